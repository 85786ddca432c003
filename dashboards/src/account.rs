//! The sign-in page and the pages that say why a request was refused (sign-in
//! needed, not allowed, too many attempts), as view models with their text already
//! chosen for the reader's language.

use askama::Template;

use crate::layout::{Layout, render};
use crate::{Catalog, Lang, Result, SiteInfo};

/// Why the last sign-in attempt did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginProblem {
    /// Name or password wrong (never which of the two).
    Credentials,
    /// A field was left empty.
    Missing,
    /// The form's token did not match: an old page, or a form posted from elsewhere.
    Expired,
    /// Too many failures lately; the next attempt is accepted after this many seconds.
    RateLimited { retry_after_s: u64 },
    /// As many passwords as the node checks at once are being checked: try again in
    /// a moment (nothing was counted against the account).
    Busy,
}

/// What the sign-in page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginView {
    /// The name typed last time, so it need not be typed again.
    pub name: String,
    /// Where to go after signing in (a path on this site).
    pub next: String,
    /// The form's anti-forgery token.
    pub csrf: String,
    pub problem: Option<LoginProblem>,
    /// Set when the reader is already signed in: the page offers to sign out.
    pub signed_in: Option<SignedIn>,
}

/// The member already signed in, and their session's anti-forgery token for the
/// sign-out form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub name: String,
    pub csrf: String,
}

/// A refusal as a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusalPage {
    /// No session: sign in first, then come back to `next`.
    SignInRequired { next: String },
    /// Signed in, but without the role the page needs (`resident`, `assembly`, …).
    MissingRole { role: String },
    /// A form without the session's anti-forgery token.
    FormNotVerified,
}

struct SignedInText {
    text: String,
    csrf: String,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginTemplate<'a> {
    view: &'a LoginView,
    problem_text: Option<String>,
    signed_in: Option<SignedInText>,
    layout: Layout<'a>,
}

/// A page that says one thing: a title, a sentence, and where to go from here.
#[derive(Template)]
#[template(path = "message.html")]
struct MessageTemplate<'a> {
    title: &'a str,
    text: String,
    link: Option<(String, &'a str)>,
    layout: Layout<'a>,
}

/// The text of a sign-in problem, in words.
pub fn login_problem_text(problem: LoginProblem, lang: Lang) -> String {
    let t = Catalog::for_lang(lang);
    match problem {
        LoginProblem::Credentials => t.t("login.error_credentials").to_string(),
        LoginProblem::Missing => t.t("login.error_missing").to_string(),
        LoginProblem::Expired => t.t("login.error_expired").to_string(),
        LoginProblem::RateLimited { retry_after_s } => {
            let minutes = retry_after_s.div_ceil(60).max(1).to_string();
            t.tf("login.error_rate_limited", &[("minutes", &minutes)])
        }
        LoginProblem::Busy => t.t("login.error_busy").to_string(),
    }
}

/// The name of a role in the reader's language (`assembly` → "assemblée").
pub fn role_name(role: &str, lang: Lang) -> String {
    let t = Catalog::for_lang(lang);
    let key = format!("role.{role}");
    let name = t.t(&key);
    if name == key { role } else { name }.to_string()
}

/// The sign-in page as a complete HTML document.
pub fn render_login(view: &LoginView, lang: Lang, site: &SiteInfo) -> Result<String> {
    let t = Catalog::for_lang(lang);
    let page = LoginTemplate {
        view,
        problem_text: view.problem.map(|p| login_problem_text(p, lang)),
        signed_in: view.signed_in.as_ref().map(|s| SignedInText {
            text: t.tf("login.signed_in_as", &[("name", &s.name)]),
            csrf: s.csrf.clone(),
        }),
        layout: Layout::new(lang, site, t.t("login.title")),
    };
    render(&page, "login.html")
}

/// A refusal page as a complete HTML document.
pub fn render_refusal(page: &RefusalPage, lang: Lang, site: &SiteInfo) -> Result<String> {
    let t = Catalog::for_lang(lang);
    let (title, text, link) = match page {
        RefusalPage::SignInRequired { next } => (
            t.t("auth.required_title"),
            t.t("auth.required_text").to_string(),
            Some((login_href(next), t.t("auth.sign_in"))),
        ),
        RefusalPage::MissingRole { role } => (
            t.t("auth.forbidden_title"),
            t.tf("auth.forbidden_role", &[("role", &role_name(role, lang))]),
            Some(("/".to_string(), t.t("notfound.back"))),
        ),
        RefusalPage::FormNotVerified => (
            t.t("auth.forbidden_title"),
            t.t("auth.form_not_verified").to_string(),
            None,
        ),
    };
    render_message(lang, site, title, text, link)
}

/// A page titled `title` that says `text`, with a link (href, label) onward.
pub(crate) fn render_message(
    lang: Lang,
    site: &SiteInfo,
    title: &str,
    text: String,
    link: Option<(String, &str)>,
) -> Result<String> {
    let page = MessageTemplate {
        title,
        text,
        link,
        layout: Layout::new(lang, site, title),
    };
    render(&page, "message.html")
}

/// `/login?next=…` with the path percent-encoded.
pub(crate) fn login_href(next: &str) -> String {
    let mut href = String::from("/login?next=");
    for byte in next.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                href.push(char::from(byte));
            }
            other => href.push_str(&format!("%{other:02X}")),
        }
    }
    href
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> SiteInfo {
        SiteInfo {
            name: "Les Tilleuls".into(),
            default_lang: Lang::Fr,
            timezone: chrono_tz::Europe::Paris,
        }
    }

    #[test]
    fn every_role_has_a_name_in_both_languages() {
        for lang in Lang::ALL {
            for role in ["resident", "assembly", "installer", "admin"] {
                let key = format!("role.{role}");
                assert_ne!(Catalog::for_lang(lang).t(&key), key, "{lang}: {key}");
            }
        }
        assert_eq!(role_name("assembly", Lang::Fr), "assemblée");
        assert_eq!(role_name("mayor", Lang::En), "mayor");
    }

    #[test]
    fn the_login_page_escapes_what_it_repeats_and_says_the_problem() {
        let view = LoginView {
            name: "<b>Ana</b>".into(),
            next: "/assembly".into(),
            csrf: "abc".into(),
            problem: Some(LoginProblem::RateLimited { retry_after_s: 600 }),
            signed_in: None,
        };
        let html = render_login(&view, Lang::Fr, &site()).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            html.contains("&#60;b&#62;Ana") || html.contains("&lt;b&gt;Ana"),
            "{html}"
        );
        assert!(html.contains("Trop de tentatives"), "{html}");
        assert!(html.contains("10 min"), "{html}");
        assert!(html.contains("name=\"csrf\" value=\"abc\""));
        let html = render_login(&view, Lang::En, &site()).unwrap_or_else(|e| panic!("{e}"));
        assert!(html.contains("Too many failed sign-in attempts"), "{html}");
    }

    #[test]
    fn refusal_pages_link_back_to_sign_in() {
        let page = RefusalPage::SignInRequired {
            next: "/assembly?x=1&y".into(),
        };
        let html = render_refusal(&page, Lang::En, &site()).unwrap_or_else(|e| panic!("{e}"));
        assert!(html.contains("/login?next=/assembly%3Fx%3D1%26y"), "{html}");
        let page = RefusalPage::MissingRole {
            role: "assembly".into(),
        };
        let html = render_refusal(&page, Lang::Fr, &site()).unwrap_or_else(|e| panic!("{e}"));
        assert!(html.contains("assemblée"), "{html}");
    }
}
