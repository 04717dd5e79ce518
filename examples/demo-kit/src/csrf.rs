//! The demos' CSRF rule, whatever the framework: both demos' middleware
//! call these, so they behave the same.
//!
//! 1. Every state-changing request (anything but GET, HEAD, OPTIONS, TRACE)
//!    must come from the demo's own origin
//!    ([`check_origin`](expected_core::http::check_origin): `Sec-Fetch-Site:
//!    same-origin` or `none`, or, without it, an `Origin` of this host), or
//!    it is refused 403 `cross_site_request`. That covers every request, a
//!    visitor's and a login included (login CSRF).
//! 2. A logged-in user's state-changing request must also present the
//!    session's CSRF token ([`expected_core::csrf`]): the `X-CSRF-Token`
//!    header (`GET /api/csrf` hands it to scripts) or the pages' hidden
//!    `csrf_token` field. Else 403 `invalid_csrf_token`, after the request
//!    was authenticated (so a remember-me cookie login it made still sends
//!    its cookies) and before the handler runs.
//!
//! A page shown to a logged-in user makes the token first (when the session
//! has none yet), so its forms carry it. A visitor's requests (the theme,
//! the login form) carry none: a visitor has no authority for a forged
//! request to ride on beyond what the origin check already refuses, and a
//! token would mean a session, a store write and a cookie for everyone who
//! only reads a page.

use expected_core::{AuthHandle, SessionError, SessionHandle, Store};

/// What a demo's middleware does with a request, before the handler:
/// whether the session's CSRF token must be checked (`true`: a logged-in
/// user's state-changing request). For a `page` (an HTML route) read by a
/// logged-in user, makes the session's token first, so the page's forms
/// carry it.
///
/// # Errors
///
/// A store failure while authenticating or saving (the adapters answer 503).
pub async fn token_needed<S: Store>(
    auth: &AuthHandle<S>,
    session: &SessionHandle<S>,
    method: &str,
    page: bool,
) -> Result<bool, SessionError> {
    let safe = expected_core::http::is_safe_method(method);
    if safe && !page {
        // An API read asks nothing of the store it does not need.
        return Ok(false);
    }
    if auth.user().await?.is_none() {
        return Ok(false);
    }
    if safe {
        match session.csrf_token().await {
            // A session already at its size limit gets no token: its forms
            // are refused, its pages still show.
            Ok(_) | Err(SessionError::TooLarge { .. }) => {}
            Err(error) => return Err(error),
        }
        return Ok(false);
    }
    Ok(true)
}

/// The `csrf_token` field of an `application/x-www-form-urlencoded` body,
/// when the content type says it is one (`None` for anything else).
pub fn form_token(content_type: Option<&str>, body: &[u8]) -> Option<String> {
    let essence = content_type?.split(';').next()?.trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return None;
    }
    let body = String::from_utf8_lossy(body);
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| crate::html::percent_decode(name) == expected_core::csrf::FORM_FIELD)
        .map(|(_, value)| crate::html::percent_decode(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_field_is_read_from_form_bodies_only() {
        let form = Some("application/x-www-form-urlencoded");
        assert_eq!(form_token(form, b"theme=dark&csrf_token=abc-_12&next=%2F").as_deref(), Some("abc-_12"));
        assert_eq!(form_token(form, b"csrf%5Ftoken=a%2Bb+c").as_deref(), Some("a+b c"), "decoded");
        assert_eq!(
            form_token(form, b"csrf_token=first&csrf_token=second").as_deref(),
            Some("first"),
            "the first"
        );
        assert_eq!(
            form_token(Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8"), b"csrf_token=x").as_deref(),
            Some("x")
        );
        assert_eq!(form_token(form, b"theme=dark"), None);
        assert_eq!(form_token(Some("application/json"), br#"{"csrf_token":"x"}"#), None);
        assert_eq!(form_token(None, b"csrf_token=x"), None);
    }
}
