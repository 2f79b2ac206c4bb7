//! POST /forget: "Forget my data now". The session goes at once, with every key of its chain
//! (the store's purge), and the cookie with it; the form page confirms.

use actix_web::http::header;
use actix_web::HttpResponse;

use crate::session::TextdropSession;

/// POST /forget: the row and the cookie go now; the form page confirms.
pub async fn forget(session: TextdropSession) -> HttpResponse {
    session.purge();
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/?forgotten=1"))
        .finish()
}
