// @generated automatically by Diesel CLI.

diesel::table! {
    sessions (id) {
        id -> Text,
        state -> Text,
        expires_at -> Timestamp,
        created_at -> Timestamp,
        file -> Nullable<Text>,
        file_bytes -> Int8,
        successor -> Nullable<Text>,
        superseded_at -> Nullable<Timestamp>,
        predecessor -> Nullable<Text>,
    }
}

diesel::table! {
    sweeper_lease (name) {
        name -> Text,
        holder -> Text,
        expires_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(sessions, sweeper_lease,);
