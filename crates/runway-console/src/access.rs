//! Permission levels, roles and teams, and the one function that decides
//! what a principal may do: [`effective_level`].
//!
//! * **Levels** per environment, LifeTime's ladder, each including the ones
//!   below: full control > change & deploy > monitor > no access.
//! * **Rights** across the infrastructure: manage infrastructure
//!   (environments, pipelines) and manage users and roles.
//! * **Roles** are named sets of levels. A level is given for an environment
//!   by name (`prod=monitor`), for an environment *class* (`@dev`, `@test`,
//!   `@prod`), or as the default (`*`); the most specific entry wins.
//! * **Classes** come from the pipeline: the first stage of a pipeline of two
//!   or more stages is `@dev`, the last `@prod`, those between `@test`; an
//!   environment outside a pipeline (or alone in one) has no class and gets
//!   the role's default. So a newly added environment gets, by role:
//!
//!   | role | `@dev` | `@test` | `@prod` | no class |
//!   |---|---|---|---|---|
//!   | Administrator | full control | full control | full control | full control |
//!   | Developer | change & deploy | monitor | monitor | monitor |
//!   | Tester | monitor | change & deploy | no access | no access |
//!   | Operations | monitor | monitor | change & deploy | monitor |
//!
//! * **Teams** hold apps and members, each member with a role inside the
//!   team that applies to the team's apps only. The effective level of a
//!   principal for (app, environment) is the highest of its own role's and
//!   those team roles'.

use std::fmt;

/// A permission level on one environment (ordered: `NoAccess` < … < `FullControl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    NoAccess,
    /// Read apps, logs, metrics, configuration without secret values.
    Monitor,
    /// Publish, deploy, configure apps, run timers.
    ChangeAndDeploy,
    /// Everything, environment settings and front-ends included.
    FullControl,
}

impl Level {
    pub const ALL: [Level; 4] = [
        Level::NoAccess,
        Level::Monitor,
        Level::ChangeAndDeploy,
        Level::FullControl,
    ];

    /// The spelling in commands and the API: `no-access`, `monitor`,
    /// `change-and-deploy`, `full-control`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::NoAccess => "no-access",
            Level::Monitor => "monitor",
            Level::ChangeAndDeploy => "change-and-deploy",
            Level::FullControl => "full-control",
        }
    }

    /// Accepts [`Level::as_str`], with `_` or spaces for `-`, any case,
    /// and `change&deploy`.
    pub fn parse(s: &str) -> Option<Level> {
        let norm: String = s
            .trim()
            .to_ascii_lowercase()
            .replace(['_', ' '], "-")
            .replace('&', "-and-")
            .replace("--", "-");
        Level::ALL.into_iter().find(|l| l.as_str() == norm)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::NoAccess => "no access",
            Level::Monitor => "monitor",
            Level::ChangeAndDeploy => "change & deploy",
            Level::FullControl => "full control",
        })
    }
}

/// Where an environment stands in its pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnvClass {
    /// The first stage of a pipeline of two or more.
    Dev,
    /// A stage between the first and the last.
    Test,
    /// The last stage of a pipeline of two or more.
    Prod,
    /// Outside a pipeline, or alone in one.
    None,
}

impl EnvClass {
    /// The class of the stage at `position` (1-based) of a pipeline of
    /// `stages` environments; `None` position: not in a pipeline.
    pub fn of(position: Option<i64>, stages: usize) -> EnvClass {
        let (Some(position), true) = (position, stages >= 2) else {
            return EnvClass::None;
        };
        if position <= 1 {
            EnvClass::Dev
        } else if position as usize >= stages {
            EnvClass::Prod
        } else {
            EnvClass::Test
        }
    }

    /// `@dev`, `@test`, `@prod` (`None` has no spelling).
    pub fn key(self) -> Option<&'static str> {
        match self {
            EnvClass::Dev => Some("@dev"),
            EnvClass::Test => Some("@test"),
            EnvClass::Prod => Some("@prod"),
            EnvClass::None => None,
        }
    }
}

/// What a level entry of a role applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LevelScope {
    /// One environment, by name.
    Environment(String),
    /// Every environment of a class.
    Class(EnvClass),
    /// Every environment no other entry names.
    Default,
}

impl LevelScope {
    /// `*`, `@dev`/`@test`/`@prod`, or an environment name.
    pub fn parse(s: &str) -> Result<LevelScope, String> {
        match s.trim() {
            "*" => Ok(LevelScope::Default),
            "@dev" => Ok(LevelScope::Class(EnvClass::Dev)),
            "@test" => Ok(LevelScope::Class(EnvClass::Test)),
            "@prod" => Ok(LevelScope::Class(EnvClass::Prod)),
            other if other.starts_with('@') => Err(format!(
                "unknown environment class {other:?}: use @dev, @test or @prod (or an \
                 environment's name, or * for every other environment)"
            )),
            name => crate::check_name("environment", name)
                .map(|()| LevelScope::Environment(name.to_string())),
        }
    }

    pub fn key(&self) -> String {
        match self {
            LevelScope::Environment(name) => name.clone(),
            LevelScope::Class(class) => class.key().unwrap_or("*").to_string(),
            LevelScope::Default => "*".to_string(),
        }
    }
}

/// A role: levels per environment and the two infrastructure rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub built_in: bool,
    pub levels: Vec<(LevelScope, Level)>,
    pub manage_infrastructure: bool,
    pub manage_users: bool,
}

impl Role {
    /// This role's level on an environment: its entry for the environment's
    /// name, else for its class, else its default, else no access.
    pub fn level(&self, env: &EnvRef<'_>) -> Level {
        let find = |want: &LevelScope| {
            self.levels
                .iter()
                .find(|(scope, _)| scope == want)
                .map(|(_, level)| *level)
        };
        find(&LevelScope::Environment(env.name.to_string()))
            .or_else(|| {
                (env.class != EnvClass::None)
                    .then(|| find(&LevelScope::Class(env.class)))
                    .flatten()
            })
            .or_else(|| find(&LevelScope::Default))
            .unwrap_or(Level::NoAccess)
    }
}

/// The built-in roles, as the issue defines them.
pub fn built_in_roles() -> Vec<Role> {
    use Level::*;
    let role = |name: &str, levels: Vec<(LevelScope, Level)>, infra: bool, users: bool| Role {
        name: name.to_string(),
        built_in: true,
        levels,
        manage_infrastructure: infra,
        manage_users: users,
    };
    let class = LevelScope::Class;
    vec![
        role(
            "Administrator",
            vec![(LevelScope::Default, FullControl)],
            true,
            true,
        ),
        role(
            "Developer",
            vec![
                (class(EnvClass::Dev), ChangeAndDeploy),
                (LevelScope::Default, Monitor),
            ],
            false,
            false,
        ),
        role(
            "Tester",
            vec![
                (class(EnvClass::Dev), Monitor),
                (class(EnvClass::Test), ChangeAndDeploy),
            ],
            false,
            false,
        ),
        role(
            "Operations",
            vec![
                (class(EnvClass::Prod), ChangeAndDeploy),
                (LevelScope::Default, Monitor),
            ],
            false,
            false,
        ),
    ]
}

/// An environment as access decisions see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvRef<'a> {
    pub name: &'a str,
    pub class: EnvClass,
}

/// A principal's membership of a team: the team's apps and its role there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub team: String,
    pub apps: Vec<String>,
    pub role: Role,
}

/// Everything that decides what a principal may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    /// The principal's own role (the console's admin: Administrator).
    pub role: Role,
    pub teams: Vec<Membership>,
}

/// THE access decision: the level of a principal on `env` for `app` (for
/// an action on the environment itself, `app` is `None` and only the
/// principal's own role counts). The highest of its role's level and the
/// levels of its roles in the teams that hold `app`.
pub fn effective_level(grants: &Grants, app: Option<&str>, env: &EnvRef<'_>) -> Level {
    let own = grants.role.level(env);
    let Some(app) = app else { return own };
    grants
        .teams
        .iter()
        .filter(|m| m.apps.iter().any(|a| a == app))
        .map(|m| m.role.level(env))
        .fold(own, Level::max)
}

/// Whether the principal may manage environments and pipelines (its own
/// role only: team roles grant levels on the team's apps, never rights).
pub fn may_manage_infrastructure(grants: &Grants) -> bool {
    grants.role.manage_infrastructure
}

/// Whether the principal may manage users, roles, teams and service accounts.
pub fn may_manage_users(grants: &Grants) -> bool {
    grants.role.manage_users
}

/// Whether a principal with `grants` may hand out `role` (to a user, a
/// service account or a team member) without gaining through it: `role`
/// must give no right the granter lacks and, on every environment in
/// `envs`, no level above the granter's own there.
pub fn may_grant(grants: &Grants, role: &Role, envs: &[EnvRef<'_>]) -> Result<(), String> {
    if role.manage_users && !grants.role.manage_users {
        return Err(format!(
            "role {} includes managing users and roles, a right you do not have",
            role.name
        ));
    }
    if role.manage_infrastructure && !grants.role.manage_infrastructure {
        return Err(format!(
            "role {} includes managing infrastructure, a right you do not have",
            role.name
        ));
    }
    for env in envs {
        let (theirs, mine) = (role.level(env), grants.role.level(env));
        if theirs > mine {
            return Err(format!(
                "role {} gives {theirs} on environment {}, above your own {mine}",
                role.name, env.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str) -> Role {
        built_in_roles()
            .into_iter()
            .find(|r| r.name == name)
            .unwrap()
    }

    const DEV: EnvRef<'static> = EnvRef {
        name: "dev",
        class: EnvClass::Dev,
    };
    const TEST: EnvRef<'static> = EnvRef {
        name: "test",
        class: EnvClass::Test,
    };
    const PROD: EnvRef<'static> = EnvRef {
        name: "prod",
        class: EnvClass::Prod,
    };
    const LAB: EnvRef<'static> = EnvRef {
        name: "lab",
        class: EnvClass::None,
    };

    #[test]
    fn levels_parse_and_order() {
        assert!(Level::FullControl > Level::ChangeAndDeploy);
        assert!(Level::ChangeAndDeploy > Level::Monitor);
        assert!(Level::Monitor > Level::NoAccess);
        for l in Level::ALL {
            assert_eq!(Level::parse(l.as_str()), Some(l));
        }
        assert_eq!(
            Level::parse("Change & Deploy"),
            Some(Level::ChangeAndDeploy)
        );
        assert_eq!(Level::parse("full_control"), Some(Level::FullControl));
        assert_eq!(Level::parse("admin"), None);
    }

    #[test]
    fn classes_come_from_the_pipeline() {
        assert_eq!(EnvClass::of(Some(1), 3), EnvClass::Dev);
        assert_eq!(EnvClass::of(Some(2), 3), EnvClass::Test);
        assert_eq!(EnvClass::of(Some(3), 3), EnvClass::Prod);
        assert_eq!(EnvClass::of(Some(2), 2), EnvClass::Prod);
        assert_eq!(EnvClass::of(Some(1), 1), EnvClass::None);
        assert_eq!(EnvClass::of(None, 0), EnvClass::None);
    }

    /// Role × team × environment × action, as a table. Actions map onto
    /// the level they need: read (monitor), deploy (change & deploy),
    /// settings (full control).
    #[test]
    fn the_permission_table() {
        use Level::*;
        let payments = Membership {
            team: "payments".into(),
            apps: vec!["billing".into()],
            role: role("Operations"),
        };
        let actions = [
            ("read", Monitor),
            ("deploy", ChangeAndDeploy),
            ("settings", FullControl),
        ];
        // (role, in team payments as Operations?, app, env, [read, deploy, settings])
        let table: &[(&str, bool, &str, EnvRef, [bool; 3])] = &[
            ("Administrator", false, "notes", DEV, [true, true, true]),
            ("Administrator", false, "notes", PROD, [true, true, true]),
            ("Administrator", false, "notes", LAB, [true, true, true]),
            ("Developer", false, "notes", DEV, [true, true, false]),
            ("Developer", false, "notes", TEST, [true, false, false]),
            ("Developer", false, "notes", PROD, [true, false, false]),
            ("Developer", false, "notes", LAB, [true, false, false]),
            // A developer in the payments team deploys billing to prod…
            ("Developer", true, "billing", PROD, [true, true, false]),
            // …but not other apps.
            ("Developer", true, "notes", PROD, [true, false, false]),
            ("Developer", true, "billing", DEV, [true, true, false]),
            ("Tester", false, "notes", DEV, [true, false, false]),
            ("Tester", false, "notes", TEST, [true, true, false]),
            ("Tester", false, "notes", PROD, [false, false, false]),
            ("Tester", false, "notes", LAB, [false, false, false]),
            ("Tester", true, "billing", PROD, [true, true, false]),
            ("Tester", true, "notes", PROD, [false, false, false]),
            ("Operations", false, "notes", DEV, [true, false, false]),
            ("Operations", false, "notes", TEST, [true, false, false]),
            ("Operations", false, "notes", PROD, [true, true, false]),
            ("Operations", false, "notes", LAB, [true, false, false]),
        ];
        for (role_name, in_team, app, env, want) in table {
            let grants = Grants {
                role: role(role_name),
                teams: if *in_team {
                    vec![payments.clone()]
                } else {
                    vec![]
                },
            };
            let level = effective_level(&grants, Some(app), env);
            for ((action, needs), allowed) in actions.iter().zip(want) {
                assert_eq!(
                    level >= *needs,
                    *allowed,
                    "{role_name} (team: {in_team}) {action} {app} in {}: level {level}",
                    env.name
                );
            }
            // Without an app (environment-wide actions) teams never count.
            assert_eq!(
                effective_level(&grants, None, env),
                role(role_name).level(env)
            );
        }
    }

    #[test]
    fn custom_roles_most_specific_entry_wins() {
        let ops = Role {
            name: "Ops".into(),
            built_in: false,
            levels: vec![
                (LevelScope::parse("*").unwrap(), Level::Monitor),
                (LevelScope::parse("@prod").unwrap(), Level::NoAccess),
                (LevelScope::parse("prod").unwrap(), Level::FullControl),
            ],
            manage_infrastructure: false,
            manage_users: false,
        };
        assert_eq!(ops.level(&PROD), Level::FullControl);
        let eu = EnvRef {
            name: "prod-eu",
            class: EnvClass::Prod,
        };
        assert_eq!(ops.level(&eu), Level::NoAccess);
        assert_eq!(ops.level(&DEV), Level::Monitor);
        assert!(LevelScope::parse("@staging").is_err());
        assert!(LevelScope::parse("Prod").is_err());
    }

    #[test]
    fn granting_cannot_escalate() {
        let dev = Grants {
            role: role("Developer"),
            teams: vec![],
        };
        let envs = [DEV, TEST, PROD];
        assert!(may_grant(&dev, &role("Developer"), &envs).is_ok());
        let err = may_grant(&dev, &role("Administrator"), &envs).unwrap_err();
        assert!(err.contains("managing users and roles"), "{err}");
        let err = may_grant(&dev, &role("Operations"), &envs).unwrap_err();
        assert!(err.contains("change & deploy on environment prod"), "{err}");
        let admin = Grants {
            role: role("Administrator"),
            teams: vec![],
        };
        for r in built_in_roles() {
            assert!(may_grant(&admin, &r, &envs).is_ok());
        }
        assert!(may_manage_users(&admin) && may_manage_infrastructure(&admin));
        assert!(!may_manage_users(&dev) && !may_manage_infrastructure(&dev));
    }
}
