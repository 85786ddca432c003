//! Which language a page is drawn in, from the request.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::header::{ACCEPT_LANGUAGE, CACHE_CONTROL, COOKIE, HeaderValue, SET_COOKIE, VARY};
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Response};
use dashboards::{Lang, negotiate};

use crate::AppState;

/// Name of the cookie that remembers a reader's explicit choice.
pub(crate) const LANG_COOKIE: &str = "lang";

/// The negotiated language of a page request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageLang {
    pub(crate) lang: Lang,
    /// Set when the request chose with `?lang=`: the response remembers it.
    pub(crate) explicit: Option<Lang>,
    /// The request came over HTTPS: the cookie is then `Secure`.
    pub(crate) https: bool,
}

impl PageLang {
    /// A page drawn for one reader in this language: never cached (its figures and
    /// forms are of the moment), varying with the language and the session, and
    /// remembering an explicit choice of language.
    pub(crate) fn page(&self, status: StatusCode, html: String) -> Response {
        let mut response = (status, Html(html)).into_response();
        self.page_headers(&mut response);
        response
    }

    /// The headers of [`PageLang::page`], on a response built otherwise.
    pub(crate) fn page_headers(&self, response: &mut Response) {
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(VARY, HeaderValue::from_static("Accept-Language, Cookie"));
        if let Some(cookie) = self.cookie() {
            headers.insert(SET_COOKIE, cookie);
        }
    }

    /// The `Set-Cookie` value that remembers an explicit choice for a year.
    pub(crate) fn cookie(&self) -> Option<HeaderValue> {
        let lang = self.explicit?;
        HeaderValue::from_str(&format!(
            "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly{}",
            lang.code(),
            if self.https { "; Secure" } else { "" }
        ))
        .ok()
    }
}

impl FromRequestParts<AppState> for PageLang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let query_lang = parts.uri.query().and_then(|q| query_param(q, "lang"));
        let cookie_lang = parts
            .headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find_map(|cookies| cookie_value(cookies, LANG_COOKIE));
        // The wall at `/` is the community's screen, often a TV or a kiosk set up in
        // whatever language it shipped with: there the site's language wins over the
        // browser's, and only `?lang=` or the switch (its cookie) change it. Every
        // other page is someone's own and follows their browser.
        let accept_language = if parts.uri.path() == "/" {
            None
        } else {
            parts
                .headers
                .get(ACCEPT_LANGUAGE)
                .and_then(|value| value.to_str().ok())
        };
        Ok(PageLang {
            lang: negotiate(
                query_lang,
                cookie_lang,
                accept_language,
                state.site.default_lang,
            ),
            explicit: query_lang.and_then(Lang::from_tag),
            https: crate::auth::over_https(parts),
        })
    }
}

/// The raw value of a query parameter. Language tags need no percent-decoding, and
/// a value that would need it names no language we have.
fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

pub(crate) fn cookie_value<'a>(cookies: &'a str, name: &str) -> Option<&'a str> {
    cookies.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_cookie_parsing() {
        assert_eq!(query_param("lang=en", "lang"), Some("en"));
        assert_eq!(query_param("x=1&lang=fr&y", "lang"), Some("fr"));
        assert_eq!(query_param("language=fr", "lang"), None);
        assert_eq!(query_param("lang", "lang"), Some(""));
        assert_eq!(cookie_value("a=b; lang=en", "lang"), Some("en"));
        assert_eq!(cookie_value("lang=\"fr\"", "lang"), Some("fr"));
        assert_eq!(cookie_value("xlang=fr; other", "lang"), None);
    }
}
