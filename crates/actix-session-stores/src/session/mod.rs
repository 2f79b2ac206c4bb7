//! What the store's semantics are made of, the same on every storage: the [`Records`] seam
//! each backend implements, how long a session lives (`lifetime`), and the key a rotation
//! derives (`rotation`).

pub(crate) mod lifetime;
pub(crate) mod records;
pub(crate) mod rotation;

pub(crate) use records::Records;
