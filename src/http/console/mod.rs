//! The reviewer console: one page (HTML, CSS and an ES module, embedded in the binary) that
//! works the review queue through the public API with the reviewer's bearer token. Served
//! with a strict Content-Security-Policy: everything from this origin, card images from the
//! blob URLs the page makes of the audited file endpoint's answers, nothing from elsewhere.

use poem::{Endpoint, Response, Route, endpoint::make_sync, http::header};

const INDEX: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("app.css");

/// Everything from this origin; card images as blob URLs; no framing, no plugins.
pub const CSP: &str = "default-src 'self'; img-src 'self' blob:; object-src 'none'; \
                       base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl Endpoint<Output = Response> {
    make_sync(move |_| {
        Response::builder()
            .content_type(content_type)
            .header(header::CONTENT_SECURITY_POLICY, CSP)
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
            .header(header::CACHE_CONTROL, "no-cache")
            .header("Referrer-Policy", "no-referrer")
            .body(body)
    })
}

/// `/console` and its two assets.
pub fn routes(route: Route) -> Route {
    route
        .at(
            "/console",
            poem::get(asset("text/html; charset=utf-8", INDEX)),
        )
        .at(
            "/console/app.js",
            poem::get(asset("text/javascript; charset=utf-8", SCRIPT)),
        )
        .at(
            "/console/app.css",
            poem::get(asset("text/css; charset=utf-8", STYLE)),
        )
}
