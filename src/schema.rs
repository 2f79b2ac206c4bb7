// @generated automatically by Diesel CLI.

diesel::table! {
    sessions (id) {
        id -> Text,
        state -> Text,
        expires_at -> Timestamp,
        created_at -> Timestamp,
        file -> Nullable<Text>,
        file_bytes -> Int8,
    }
}
