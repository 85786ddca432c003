//! The navigation bar of the members' pages: the same links on every page, those
//! the member's roles open, the current page marked, and signing out.

use ledger::Role;

use crate::Catalog;

/// One link of the bar.
pub(crate) struct NavLink {
    pub(crate) href: &'static str,
    pub(crate) label: String,
    pub(crate) current: bool,
    /// A count beside the label ("3 new"), if there is one to show.
    pub(crate) badge: Option<String>,
}

/// What `member_nav.html` draws.
pub(crate) struct MemberNav {
    pub(crate) links: Vec<NavLink>,
    pub(crate) signed_in: String,
    pub(crate) csrf: String,
}

/// The bar for `member`, holding `roles`, on the page at `current`.
pub(crate) fn member_nav(
    current: &str,
    roles: &[Role],
    member: &str,
    csrf: &str,
    t: &Catalog,
) -> MemberNav {
    let pages: [(&'static str, &str, bool); 8] = [
        ("/", "assembly.nav_wall", true),
        ("/history", "history.title", true),
        ("/ledger", "ledger.title", true),
        ("/plan", "plan.title", true),
        ("/sortition", "sortition.nav", true),
        ("/me", "me.nav", true),
        (
            "/assembly",
            "assembly.title",
            roles.contains(&Role::Assembly),
        ),
        (
            "/installer",
            "installer.title",
            roles.contains(&Role::Installer),
        ),
    ];
    MemberNav {
        links: pages
            .into_iter()
            .filter(|(href, _, open)| *open || *href == current)
            .map(|(href, key, _)| NavLink {
                href,
                label: t.t(key).to_string(),
                current: href == current,
                badge: None,
            })
            .collect(),
        signed_in: t.tf("assembly.signed_in_as", &[("name", member)]),
        csrf: csrf.to_string(),
    }
}

impl MemberNav {
    /// The count of `new` matches on the planning board beside its link (none when
    /// there are none).
    pub(crate) fn with_new_matches(mut self, new: usize, t: &Catalog) -> MemberNav {
        if new > 0
            && let Some(link) = self.links.iter_mut().find(|l| l.href == "/plan")
        {
            link.badge = Some(t.count("plan.nav_new", new as u64));
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Lang;

    #[test]
    fn the_bar_offers_what_the_roles_open_and_marks_the_page() {
        let t = Catalog::for_lang(Lang::En);
        let hrefs = |nav: &MemberNav| nav.links.iter().map(|l| l.href).collect::<Vec<_>>();
        let resident = member_nav("/ledger", &[Role::Resident], "rita", "c", t);
        assert_eq!(
            hrefs(&resident),
            ["/", "/history", "/ledger", "/plan", "/sortition", "/me"]
        );
        let both = member_nav(
            "/assembly",
            &[Role::Assembly, Role::Installer],
            "al",
            "c",
            t,
        );
        assert_eq!(
            hrefs(&both),
            [
                "/",
                "/history",
                "/ledger",
                "/plan",
                "/sortition",
                "/me",
                "/assembly",
                "/installer"
            ]
        );
        let current: Vec<bool> = both.links.iter().map(|l| l.current).collect();
        assert_eq!(
            current,
            [false, false, false, false, false, false, true, false]
        );
        assert_eq!(
            both.signed_in,
            t.tf("assembly.signed_in_as", &[("name", "al")])
        );
    }
}
