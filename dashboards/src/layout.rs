//! What every page shares: the frame `templates/base.html` draws around its
//! content (the document's language and title, the site's name, the language
//! switch, the members' navigation) and the static assets it links to.

use crate::nav::MemberNav;
use crate::{Catalog, Error, Lang, Result, SiteInfo};

/// The wall screen's stylesheet, served at `/static/wall.css`.
pub const WALL_CSS: &str = include_str!("../static/wall.css");
/// The wall screen's live-update script, served at `/static/wall.js`.
pub const WALL_JS: &str = include_str!("../static/wall.js");

/// Changes whenever either asset changes; pages link `?v=ASSET_VERSION` so a
/// browser that cached an older asset fetches the new one, and it doubles as the
/// assets' ETag.
pub const ASSET_VERSION: u64 = fnv1a(WALL_JS.as_bytes(), fnv1a(WALL_CSS.as_bytes(), FNV_OFFSET));

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

const fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// What `base.html` needs, held by every page's template as its `layout` field.
/// `base.html` names the catalog `t` for the pages' own blocks as well.
pub(crate) struct Layout<'a> {
    pub(crate) lang: Lang,
    /// The reader's catalog.
    pub(crate) t: &'static Catalog,
    /// The document's title: "Les Tilleuls · Énergie en direct".
    pub(crate) title: String,
    pub(crate) site_name: &'a str,
    pub(crate) asset_version: u64,
    /// The members' navigation bar, on the pages a member signs in for.
    pub(crate) nav: Option<MemberNav>,
}

impl<'a> Layout<'a> {
    /// The frame of a page of `site` called `page_title` (already in `lang`).
    pub(crate) fn new(lang: Lang, site: &'a SiteInfo, page_title: &str) -> Layout<'a> {
        Layout {
            lang,
            t: Catalog::for_lang(lang),
            title: format!("{} · {page_title}", site.name),
            site_name: &site.name,
            asset_version: ASSET_VERSION,
            nav: None,
        }
    }

    /// The same frame with the members' navigation bar in its header.
    pub(crate) fn with_nav(self, nav: MemberNav) -> Layout<'a> {
        Layout {
            nav: Some(nav),
            ..self
        }
    }
}

/// Renders a page's template, naming the template when it fails.
pub(crate) fn render(page: &impl askama::Template, template: &'static str) -> Result<String> {
    page.render()
        .map_err(|source| Error::Render { template, source })
}
