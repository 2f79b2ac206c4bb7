//! The seam under the store: one session record read and written, which each backend
//! implements. Implement [`Records`] to keep sessions somewhere this crate does not ship, and
//! hand it to [`Storage::with_records`](crate::Storage::with_records).

pub use crate::session::records::*;
