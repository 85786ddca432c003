//! The headers every answer carries (DESIGN.md §9), whatever route or refusal
//! produced it: a policy that lets a page run script and styles from this node only
//! and forbids any other site to frame it, no guessing of content types, and no
//! address of the node given to the sites a page links to.
//!
//! The pages fit the policy as they are: their only script and stylesheet are
//! `/static/wall.js` and `/static/wall.css`, with no inline script, `style`
//! attribute or event handler; charts are inline SVG drawn with presentation
//! attributes; the wall's script reads `/events` and `/wall/today` from this node.

use axum::http::HeaderValue;
use axum::http::header::{
    CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::response::Response;

/// Nothing by default; script, styles, images, fonts and fetches from this node;
/// forms posted to it only; no `<base>`, no plug-ins, no framing by anyone.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; font-src 'self'; connect-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// Adds the headers to `response`, keeping any a handler set itself.
pub(crate) async fn headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY_VALUE),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (REFERRER_POLICY, "same-origin"),
        // For the old tablets of wall screens whose browsers predate
        // `frame-ancestors`.
        (X_FRAME_OPTIONS, "DENY"),
    ] {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}
