//! Signing in and out, the limit on failed attempts, and API tokens.

use axum::http::StatusCode;

use crate::support::{
    PASSWORD, form_csrf, get, login, request, send, set_cookie, try_login, with_members,
};

#[tokio::test]
async fn the_login_page_is_french_by_default_and_english_on_request() {
    let (state, _tx) = with_members();
    let fr = send(state.clone(), get("/login", &[])).await;
    assert_eq!(fr.status, StatusCode::OK);
    assert!(fr.body.contains("<html lang=\"fr\">"));
    assert!(fr.body.contains("Mot de passe") && fr.body.contains("Se connecter"));
    assert_eq!(form_csrf(&fr.body).len(), 64);
    let cookie = fr.header("set-cookie");
    assert!(cookie.contains("communalia_login="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let en = send(state, get("/login", &[("accept-language", "en")])).await;
    assert!(en.body.contains("<html lang=\"en\">"));
    assert!(en.body.contains("Password") && en.body.contains("Sign in"));
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_session_cookie_and_signing_out_ends_it() {
    let (state, _tx) = with_members();
    let reply = try_login(&state, "aline", PASSWORD, "10.1.1.1").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(reply.header("location"), "/api/me");
    let raw = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("communalia_session="))
        .unwrap_or_else(|| panic!("no session cookie"))
        .to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(raw.contains(attribute), "{raw} lacks {attribute}");
    }
    assert!(!raw.contains("Secure"), "plain HTTP here: {raw}");

    let browser = login(&state, "aline").await;
    let me = send(
        state.clone(),
        get("/api/me", &[("cookie", &browser.cookie)]),
    )
    .await;
    assert_eq!(me.json()["name"], "aline");
    assert_eq!(
        me.json()["roles"],
        serde_json::json!(["resident", "assembly"])
    );
    // The login page now offers to sign out, with the session's CSRF token.
    let page = send(state.clone(), get("/login", &[("cookie", &browser.cookie)])).await;
    assert!(
        page.body.contains("aline") && page.body.contains("/logout"),
        "{}",
        page.body
    );
    assert_eq!(form_csrf(&page.body), browser.csrf);

    // Signing out is a form post carrying the token.
    let out = send(
        state.clone(),
        axum::http::Request::post("/logout")
            .header("cookie", &browser.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(format!("csrf={}", browser.csrf)))
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    assert!(out.header("set-cookie").contains("Max-Age=0"));
    let me = send(state, get("/api/me", &[("cookie", &browser.cookie)])).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert!(
        me.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("session"))
    );
}

#[tokio::test]
async fn a_wrong_password_is_said_in_words_without_telling_which_part_was_wrong() {
    let (state, _tx) = with_members();
    for (name, lang_says) in [
        ("aline", "Nom ou mot de passe incorrect"),
        ("nobody", "Nom ou mot de passe incorrect"),
    ] {
        let reply = try_login(&state, name, "not the password", "10.1.1.2").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert!(reply.body.contains(lang_says), "{}", reply.body);
        assert!(set_cookie(&reply, web::SESSION_COOKIE).is_none());
    }
}

#[tokio::test]
async fn a_login_form_without_its_token_is_refused() {
    let (state, _tx) = with_members();
    let reply = send(
        state,
        axum::http::Request::post("/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(format!(
                "name=aline&password={PASSWORD}"
            )))
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.body.contains("formulaire a expiré"), "{}", reply.body);
}

#[tokio::test]
async fn five_failures_for_an_account_give_429_with_retry_after_and_words() {
    let (state, _tx) = with_members();
    for attempt in 0..web::FAILURES_PER_ACCOUNT {
        let reply = try_login(&state, "aline", "guess", "10.2.0.1").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    // Even the right password is refused now, from any address.
    let reply = try_login(&state, "Aline", PASSWORD, "10.2.0.99").await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.body
    );
    let retry: u64 = reply
        .header("retry-after")
        .parse()
        .unwrap_or_else(|e| panic!("Retry-After: {e}"));
    assert!((1..=15 * 60).contains(&retry), "{retry}");
    assert!(
        reply
            .body
            .contains("Trop de tentatives de connexion échouées. Réessayez dans 15 min."),
        "{}",
        reply.body
    );
    // Other accounts are not locked.
    let reply = try_login(&state, "rita", PASSWORD, "10.2.0.1").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn an_address_with_many_failures_is_limited_across_accounts() {
    let (state, _tx) = with_members();
    for attempt in 0..web::FAILURES_PER_ADDRESS {
        let reply = try_login(&state, &format!("guess{attempt}"), "guess", "10.3.0.1").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let reply = try_login(&state, "rita", PASSWORD, "10.3.0.1").await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(!reply.header("retry-after").is_empty());
    // From elsewhere, rita signs in.
    let reply = try_login(&state, "rita", PASSWORD, "10.3.0.2").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_success_resets_the_account_counter() {
    let (state, _tx) = with_members();
    for _ in 0..web::FAILURES_PER_ACCOUNT - 1 {
        try_login(&state, "ivo", "guess", "10.4.0.1").await;
    }
    assert_eq!(
        try_login(&state, "ivo", PASSWORD, "10.4.0.1").await.status,
        StatusCode::SEE_OTHER
    );
    for _ in 0..web::FAILURES_PER_ACCOUNT - 1 {
        let reply = try_login(&state, "ivo", "guess", "10.4.0.1").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn a_bearer_token_acts_as_its_member_until_revoked() {
    let (state, _tx) = with_members();
    let token = state
        .journal
        .create_token("ivo", "monitoring", None, chrono::Utc::now())
        .unwrap_or_else(|e| panic!("{e}"));
    let auth = format!("Bearer {token}");
    let me = send(state.clone(), get("/api/me", &[("authorization", &auth)])).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["name"], "ivo");
    assert_eq!(me.json()["csrf"], serde_json::Value::Null);
    // Another scheme, or no token, is not a member.
    let basic = send(
        state.clone(),
        get("/api/me", &[("authorization", "Basic aXZvOng=")]),
    )
    .await;
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);
    assert!(basic.header("www-authenticate").starts_with("Bearer"));
    let id = state.journal.tokens("ivo").unwrap_or_default()[0].id;
    state
        .journal
        .revoke_token(id, chrono::Utc::now())
        .unwrap_or_else(|e| panic!("{e}"));
    let me = send(state, get("/api/me", &[("authorization", &auth)])).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert!(
        me.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("revoked"))
    );
}

#[tokio::test]
async fn pages_that_need_a_member_say_so_in_the_readers_language() {
    let (state, _tx) = with_members();
    let reply = send(
        state.clone(),
        request("POST", "/logout", &[("accept-language", "en")], ""),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.body.contains("Sign-in required"), "{}", reply.body);
    assert!(reply.body.contains("/login?next=/logout"), "{}", reply.body);
}

#[tokio::test]
async fn an_expired_token_gets_401() {
    let (state, _tx) = with_members();
    let now = chrono::Utc::now();
    let token = state
        .journal
        .create_token(
            "ivo",
            "short-lived",
            Some(now + chrono::Duration::milliseconds(300)),
            now,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let auth = format!("Bearer {token}");
    let me = send(state.clone(), get("/api/me", &[("authorization", &auth)])).await;
    assert_eq!(me.status, StatusCode::OK, "it acts until it expires");
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let me = send(state, get("/api/me", &[("authorization", &auth)])).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert!(
        me.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("expired")),
        "{}",
        me.body
    );
}

#[tokio::test]
async fn after_a_password_change_the_old_token_and_session_get_401() {
    let (state, _tx) = with_members();
    let token = state
        .journal
        .create_token("aline", "script", None, chrono::Utc::now())
        .unwrap_or_else(|e| panic!("{e}"));
    let auth = format!("Bearer {token}");
    let browser = login(&state, "aline").await;
    let me = send(state.clone(), get("/api/me", &[("authorization", &auth)])).await;
    assert_eq!(me.status, StatusCode::OK);
    // Someone learnt aline's password and made the token; she changes it.
    let signed_out = state
        .journal
        .set_password("aline", "a brand new secret", chrono::Utc::now())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((signed_out.sessions, signed_out.tokens), (1, 1));
    let me = send(state.clone(), get("/api/me", &[("authorization", &auth)])).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    let me = send(
        state.clone(),
        get("/api/me", &[("cookie", &browser.cookie)]),
    )
    .await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    // The new password signs in, and a token made now acts.
    let reply = try_login(&state, "aline", "a brand new secret", "127.0.0.1").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    let fresh = crate::support::bearer(&state, "aline");
    let me = send(state, get("/api/me", &[("authorization", &fresh)])).await;
    assert_eq!(me.status, StatusCode::OK);
}
