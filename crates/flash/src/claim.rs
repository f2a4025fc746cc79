//! Which user of a stick set the next stick gets, and claiming them in the ledger.
//!
//! One rule, used when a run starts (the user verified first) and for every stick after:
//! a user is handed out unless another stick is being written for them or was written
//! (taken, per the ledger), the revocation list revokes them, their image did not verify in
//! this run (bad), or `--user` chose another. The ledger decides a race between stations:
//! a claim another station won moves on to the next user.

use std::collections::BTreeSet;

/// Why a user of the set is not handed a stick now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// `--user` chose another.
    NotChosen,
    /// A stick is being written for them, or was (good or revoked), per the ledger.
    Taken,
    /// The revocation list revokes them.
    Revoked,
    /// Their image did not verify in this run.
    Bad,
}

/// The users of a set, in the set's order, and what rules some out for this run.
#[derive(Debug, Clone, Default)]
pub struct Users {
    /// Every user id, in the set's order.
    pub order: Vec<String>,
    /// `--user`: only this one.
    pub only: Option<String>,
    /// Revoked by the revocation list.
    pub revoked: BTreeSet<String>,
    /// Did not verify in this run: never handed out in it.
    pub bad: BTreeSet<String>,
}

impl Users {
    /// Why `user` is not handed out, given the users the ledger holds as `taken`.
    pub fn unavailable(&self, user: &str, taken: &BTreeSet<String>) -> Option<Unavailable> {
        if self.only.as_deref().is_some_and(|o| o != user) {
            Some(Unavailable::NotChosen)
        } else if taken.contains(user) {
            Some(Unavailable::Taken)
        } else if self.revoked.contains(user) {
            Some(Unavailable::Revoked)
        } else if self.bad.contains(user) {
            Some(Unavailable::Bad)
        } else {
            None
        }
    }

    /// The users who may be handed a stick now, in the set's order.
    pub fn candidates<'a>(
        &'a self,
        taken: &'a BTreeSet<String>,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.order
            .iter()
            .map(String::as_str)
            .filter(move |u| self.unavailable(u, taken).is_none())
    }
}

/// The ledger as the flasher uses it to hand out users (implemented by the station's ledger;
/// tests use a map).
pub trait Claims<I> {
    /// The ledger's error.
    type Error;
    /// The users the ledger holds as taken.
    fn taken(&mut self) -> Result<BTreeSet<String>, Self::Error>;
    /// Claim `user` for a stick that gets `image`: the ledger row, or `None` when another
    /// station claimed them first.
    fn claim(&mut self, user: &str, image: &I) -> Result<Option<i64>, Self::Error>;
}

/// A user claimed for a stick.
#[derive(Debug)]
pub struct Claimed<I> {
    /// The user.
    pub user: String,
    /// Their image, as `prepare` gave it.
    pub image: I,
    /// The ledger's row.
    pub row: i64,
}

/// Claim the next user: each candidate in order is prepared (their image verified) and
/// claimed; a user whose image fails is marked bad (`on_bad` gets the error) and the next is tried,
/// as is the next when another station won the claim. `None`: no user left.
pub fn claim_next<I, E, C: Claims<I>>(
    users: &mut Users,
    claims: &mut C,
    mut prepare: impl FnMut(&str) -> Result<I, E>,
    mut on_bad: impl FnMut(&str, &E),
) -> Result<Option<Claimed<I>>, C::Error> {
    let taken = claims.taken()?;
    let candidates: Vec<String> = users.candidates(&taken).map(String::from).collect();
    for user in candidates {
        let image = match prepare(&user) {
            Ok(i) => i,
            Err(why) => {
                on_bad(&user, &why);
                users.bad.insert(user);
                continue;
            }
        };
        if let Some(row) = claims.claim(&user, &image)? {
            return Ok(Some(Claimed { user, image, row }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A ledger in memory: a claim succeeds once per user; `raced` users are taken by another
    /// station between `taken` and `claim`.
    #[derive(Default)]
    struct Memory {
        rows: BTreeMap<String, i64>,
        raced: BTreeSet<String>,
        fail: bool,
    }

    impl Claims<String> for Memory {
        type Error = String;
        fn taken(&mut self) -> Result<BTreeSet<String>, String> {
            if self.fail {
                return Err("ledger gone".into());
            }
            Ok(self.rows.keys().cloned().collect())
        }
        fn claim(&mut self, user: &str, image: &String) -> Result<Option<i64>, String> {
            assert_eq!(image, &format!("image of {user}"));
            if self.raced.remove(user) {
                self.rows.insert(user.into(), -1);
                return Ok(None);
            }
            if self.rows.contains_key(user) {
                return Ok(None);
            }
            let row = self.rows.len() as i64 + 1;
            self.rows.insert(user.into(), row);
            Ok(Some(row))
        }
    }

    fn users(names: &[&str]) -> Users {
        Users {
            order: names.iter().map(|s| s.to_string()).collect(),
            ..Users::default()
        }
    }

    fn take(u: &mut Users, m: &mut Memory, bad: &[&str]) -> Option<String> {
        let prepare = |user: &str| {
            if bad.contains(&user) {
                Err("signature".to_string())
            } else {
                Ok(format!("image of {user}"))
            }
        };
        claim_next(u, m, prepare, |_, _: &String| {})
            .expect("ledger")
            .map(|c| c.user)
    }

    #[test]
    fn each_reason_a_user_is_passed_over() {
        let mut u = users(&["anna", "bernd", "clara", "dora", "emil"]);
        u.only = None;
        u.revoked.insert("bernd".into());
        u.bad.insert("clara".into());
        let taken: BTreeSet<String> = ["anna".to_string()].into();
        let cases = [
            ("anna", Some(Unavailable::Taken)),
            ("bernd", Some(Unavailable::Revoked)),
            ("clara", Some(Unavailable::Bad)),
            ("dora", None),
            ("emil", None),
        ];
        for (user, want) in cases {
            println!("case {user}: {want:?}");
            assert_eq!(u.unavailable(user, &taken), want, "{user}");
        }
        assert_eq!(u.candidates(&taken).collect::<Vec<_>>(), ["dora", "emil"]);
        u.only = Some("emil".into());
        assert_eq!(u.unavailable("dora", &taken), Some(Unavailable::NotChosen));
        assert_eq!(u.candidates(&taken).collect::<Vec<_>>(), ["emil"]);
        // --user names a revoked user: still revoked.
        u.only = Some("bernd".into());
        assert_eq!(u.candidates(&taken).count(), 0);
    }

    #[test]
    fn users_are_handed_out_in_order_once_each_skipping_revoked_and_bad() {
        let mut u = users(&["anna", "bernd", "clara", "dora"]);
        u.revoked.insert("bernd".into());
        let mut m = Memory::default();
        let mut said = Vec::new();
        let got = claim_next(
            &mut u,
            &mut m,
            |user| Ok(format!("image of {user}")),
            |user, why: &String| said.push(format!("{user}: {why}")),
        )
        .expect("ledger");
        assert_eq!(got.map(|c| (c.user, c.row)), Some(("anna".into(), 1)));
        assert_eq!(take(&mut u, &mut m, &["clara"]), Some("dora".into()));
        assert!(
            u.bad.contains("clara"),
            "a user that failed is never tried again"
        );
        assert_eq!(
            take(&mut u, &mut m, &[]),
            None,
            "bernd is revoked, clara bad"
        );
        assert!(said.is_empty());
    }

    #[test]
    fn a_claim_lost_to_another_station_moves_on() {
        let mut u = users(&["anna", "bernd"]);
        let mut m = Memory::default();
        m.raced.insert("anna".into());
        assert_eq!(take(&mut u, &mut m, &[]), Some("bernd".into()));
        assert_eq!(take(&mut u, &mut m, &[]), None);
    }

    #[test]
    fn a_ledger_error_is_the_callers() {
        let mut u = users(&["anna"]);
        let mut m = Memory {
            fail: true,
            ..Memory::default()
        };
        let r = claim_next(&mut u, &mut m, |x| Ok(x.to_string()), |_, _: &String| {});
        assert_eq!(r.map(|c| c.map(|c| c.user)), Err("ledger gone".into()));
    }

    #[test]
    fn the_bad_are_said_once_with_their_reason() {
        let mut u = users(&["anna", "bernd"]);
        let mut m = Memory::default();
        let mut said = Vec::new();
        let r = claim_next(
            &mut u,
            &mut m,
            |user| {
                if user == "anna" {
                    Err("signature: not trusted".to_string())
                } else {
                    Ok(format!("image of {user}"))
                }
            },
            |user, why: &String| said.push(format!("{user}: {why}")),
        )
        .expect("ledger");
        assert_eq!(r.map(|c| c.user), Some("bernd".into()));
        assert_eq!(said, ["anna: signature: not trusted"]);
    }
}
