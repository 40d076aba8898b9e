//! The rules of account management: which role changes and removals are
//! allowed, and what a password must be. Pure functions over a snapshot
//! (the target, how many admins there are, what the target owns) so every
//! case is unit-tested without a database; the API and the CLI both ask
//! these before they write.

use uuid::Uuid;

use super::{Millis, Role, User};

/// Shortest password accepted (NIST SP 800-63B's minimum for a chosen one).
pub const PASSWORD_MIN_CHARS: usize = 8;
/// Longest password accepted: argon2 takes any length, but a megabyte of
/// "password" is a request to burn CPU, not a credential.
pub const PASSWORD_MAX_CHARS: usize = 1024;

/// What a user still owns that must not be orphaned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Holdings {
    /// Projects not deleted (their volumes hold the user's work).
    pub projects: u64,
    /// Workspaces.
    pub workspaces: u64,
}

impl Holdings {
    pub fn is_empty(&self) -> bool {
        self.projects == 0 && self.workspaces == 0
    }
}

fn plural(n: u64, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// Whether a password may be set; the message says what to fix.
pub fn check_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < PASSWORD_MIN_CHARS {
        return Err(format!(
            "password must be at least {PASSWORD_MIN_CHARS} characters"
        ));
    }
    if n > PASSWORD_MAX_CHARS {
        return Err(format!(
            "password must be at most {PASSWORD_MAX_CHARS} characters"
        ));
    }
    Ok(())
}

/// Whether `target` may get `role`, given how many admins there are now.
/// The last admin cannot become a member: nobody could then manage users,
/// run cleanup or see everyone's workspaces from the API.
pub fn check_role_change(target: &User, role: Role, admins: u64) -> Result<(), String> {
    if target.role == Role::Admin && role == Role::Member && admins <= 1 {
        return Err(format!(
            "{} is the only admin; make another user admin first",
            target.email
        ));
    }
    Ok(())
}

/// Whether `target` may be removed by `actor` (`None`: the CLI on the data
/// directory), handing what they own to `heir` if given.
///
/// A user who still owns projects or workspaces is only removed with an
/// heir: removing the account must never remove (or strand) anyone's work.
pub fn check_removal(
    actor: Option<Uuid>,
    target: &User,
    admins: u64,
    holdings: Holdings,
    heir: Option<&User>,
) -> Result<(), String> {
    if actor == Some(target.id) {
        return Err("you cannot remove your own account; another admin can".into());
    }
    if target.role == Role::Admin && admins <= 1 {
        return Err(format!(
            "{} is the only admin; make another user admin first",
            target.email
        ));
    }
    match heir {
        Some(h) if h.id == target.id => Err(format!(
            "{}'s projects cannot be handed to {} itself; name another user",
            target.email, h.email
        )),
        Some(_) => Ok(()),
        None if holdings.is_empty() => Ok(()),
        None => {
            let mut owned = Vec::new();
            if holdings.projects > 0 {
                owned.push(plural(holdings.projects, "project"));
            }
            if holdings.workspaces > 0 {
                owned.push(plural(holdings.workspaces, "workspace"));
            }
            Err(format!(
                "{} owns {}; name a user to hand them to (transferTo), or delete them first",
                target.email,
                owned.join(" and ")
            ))
        }
    }
}

super::spelled_enum! {
    /// What a token was made for.
    pub enum TokenKind("token kind") {
        /// Made by `berth token create`; does not expire.
        Api = "api",
        /// Made by a login; expires and is revoked by logout.
        Session = "session",
    }
}

/// A token as listed to its owner: never the token itself (only its hash is
/// stored), but enough to recognise and revoke it.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub id: Uuid,
    pub kind: TokenKind,
    pub name: String,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    pub last_used_at: Option<Millis>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role) -> User {
        User {
            id: Uuid::new_v4(),
            email: format!("{}@example.com", role.as_str()),
            role,
            created_at: 0,
        }
    }

    const NOTHING: Holdings = Holdings {
        projects: 0,
        workspaces: 0,
    };

    #[test]
    fn passwords_have_a_floor_and_a_ceiling_counted_in_characters() {
        assert!(check_password("1234567").is_err());
        assert!(check_password("12345678").is_ok());
        // Eight characters, more bytes: counted as characters.
        assert!(check_password("ééééééé").is_err());
        assert!(check_password("éééééééé").is_ok());
        assert!(check_password(&"x".repeat(PASSWORD_MAX_CHARS)).is_ok());
        let long = check_password(&"x".repeat(PASSWORD_MAX_CHARS + 1)).unwrap_err();
        assert!(long.contains("at most 1024"), "{long}");
    }

    #[test]
    fn the_last_admin_cannot_be_demoted() {
        let admin = user(Role::Admin);
        let err = check_role_change(&admin, Role::Member, 1).unwrap_err();
        assert!(err.contains("only admin"), "{err}");
        assert!(check_role_change(&admin, Role::Member, 2).is_ok());
        // Staying admin, or a member anything, is always fine.
        assert!(check_role_change(&admin, Role::Admin, 1).is_ok());
        let member = user(Role::Member);
        assert!(check_role_change(&member, Role::Admin, 0).is_ok());
        assert!(check_role_change(&member, Role::Member, 1).is_ok());
    }

    #[test]
    fn nobody_removes_themselves() {
        let admin = user(Role::Admin);
        let err = check_removal(Some(admin.id), &admin, 5, NOTHING, None).unwrap_err();
        assert!(err.contains("your own account"), "{err}");
        // The CLI has no actor.
        assert!(check_removal(None, &admin, 5, NOTHING, None).is_ok());
    }

    #[test]
    fn the_last_admin_cannot_be_removed() {
        let admin = user(Role::Admin);
        let err = check_removal(None, &admin, 1, NOTHING, None).unwrap_err();
        assert!(err.contains("only admin"), "{err}");
        assert!(check_removal(Some(Uuid::new_v4()), &admin, 2, NOTHING, None).is_ok());
        // A member goes even when there is no admin at all.
        assert!(check_removal(None, &user(Role::Member), 0, NOTHING, None).is_ok());
    }

    #[test]
    fn a_user_who_owns_work_needs_an_heir() {
        let member = user(Role::Member);
        let heir = user(Role::Admin);
        for (holdings, says) in [
            (
                Holdings {
                    projects: 1,
                    workspaces: 0,
                },
                "owns 1 project;",
            ),
            (
                Holdings {
                    projects: 0,
                    workspaces: 3,
                },
                "owns 3 workspaces;",
            ),
            (
                Holdings {
                    projects: 2,
                    workspaces: 1,
                },
                "owns 2 projects and 1 workspace;",
            ),
        ] {
            let err = check_removal(None, &member, 1, holdings, None).unwrap_err();
            assert!(err.contains(says), "{err}");
            assert!(err.contains("transferTo"), "{err}");
            assert!(check_removal(None, &member, 1, holdings, Some(&heir)).is_ok());
        }
    }

    #[test]
    fn the_heir_is_someone_else() {
        let member = user(Role::Member);
        let err = check_removal(None, &member, 1, NOTHING, Some(&member)).unwrap_err();
        assert!(err.contains("name another user"), "{err}");
    }
}
