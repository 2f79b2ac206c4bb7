//! The session semantics, the same on every storage: the store ([`store`]) over one
//! [`Records`] seam each backend implements, how long a session lives (`lifetime`), and the
//! key a rotation derives (`rotation`).

pub(crate) mod lifetime;
pub(crate) mod records;
pub(crate) mod rotation;
pub(crate) mod store;

pub(crate) use records::Records;
