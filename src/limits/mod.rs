//! Bounds on what anonymous visitors can make the server hold: uploads per client address
//! ([`UploadRate`]), bytes stored across all sessions ([`StorageCap`]), bytes of upload bodies
//! held at once ([`UploadBuffer`]) and file pages prepared at once ([`ViewGate`]), the last two
//! shared fairly between client addresses ([`FairShare`]). The HTTP side (which requests pass
//! them, and the pages for those that do not) is `routes::guard`.

mod buffer;
mod cap;
mod client;
mod fair;
mod rate;
mod shares;
mod view_budget;
mod views;

pub use buffer::{BufferRoom, NoRoom, UploadBuffer, FRAMING_ALLOWANCE};
pub use cap::{Reservation, StorageCap};
pub use client::{client_address, client_key, ForwardedHeader, TrustedProxies};
pub use fair::{FairShare, Held};
pub use rate::UploadRate;
pub use shares::{Claim, ClientShares};
pub use view_budget::{FileShown, OverBudget, ViewBudget};
pub use views::ViewGate;
