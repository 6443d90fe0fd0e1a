//! The case rules: for each action a case may be decided by, the reason
//! codes a proposal must give (with their Simplified Chinese labels), the
//! roles that may propose it and the roles whose approvals complete it, read
//! from `rules/cases.toml` and validated before any proposal is checked
//! against them. This module owns the rules' shape and their validation; it
//! must never read files (the caller hands it the TOML text) and never
//! accept a rule silently: an unknown action or role, an action without
//! reasons or without an approver is an error that names the key.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::machine::{Action, Role};

/// The default rules, the same text as `rules/cases.toml`.
pub const DEFAULT_RULES_TOML: &str = include_str!("../../rules/cases.toml");

/// Why a case rules file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The TOML does not parse or does not have the expected keys; the
    /// message names the line and the key.
    #[error("the case rules are not valid TOML of the expected shape: {0}")]
    Parse(#[from] toml::de::Error),
    /// A key has a value the case machine cannot work with.
    #[error("case rule `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

/// The validated case rules: one rule for every [`Action`].
#[derive(Debug, Clone, PartialEq)]
pub struct CaseRules {
    /// Stored on every proposal, so a decision can be traced to the rules
    /// that allowed it.
    pub version: String,
    /// Always holds every action: validation refuses a file that leaves one out.
    actions: BTreeMap<Action, ActionRule>,
}

/// What one action needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRule {
    /// Roles that may propose the action.
    pub proposers: Vec<Role>,
    /// One entry per approval the action needs, each by a different person
    /// who is not the proposer; a role may appear twice (two reviewers).
    pub approvers: Vec<Role>,
    /// Reason code → label shown to people. A proposal's reason must be one
    /// of these codes, so reports can count decisions by reason.
    pub reasons: BTreeMap<String, String>,
}

/// The file as written, before its names are checked: strings rather than
/// enums, so a wrong name is reported with its key rather than as a serde
/// variant error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    version: String,
    #[serde(default)]
    actions: BTreeMap<String, RawActionRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawActionRule {
    #[serde(default = "default_proposers")]
    proposers: Vec<String>,
    #[serde(default)]
    approvers: Vec<String>,
    #[serde(default)]
    reasons: BTreeMap<String, String>,
}

fn default_proposers() -> Vec<String> {
    vec![Role::Caseworker.as_str().to_string()]
}

/// Actions whose decision moves money or stops a person being found: by
/// DESIGN invariant 4 a reviewer must be among the people who decide them.
const NEEDS_REVIEWER: [Action; 4] = [
    Action::ConfirmDeath,
    Action::FalseMatch,
    Action::Resume,
    Action::WriteOff,
];

/// Where the case rules are read from by default.
pub const DEFAULT_RULES_PATH: &str = "rules/cases.toml";

impl CaseRules {
    /// Parses and validates rules from TOML text.
    pub fn from_toml(text: &str) -> Result<CaseRules, RulesError> {
        let raw: RawRules = toml::from_str(text)?;
        let invalid = |key: String, reason: String| RulesError::Invalid { key, reason };
        if raw.version.trim().is_empty() {
            return Err(invalid("version".into(), "must not be empty".into()));
        }
        for name in raw.actions.keys() {
            if Action::parse(name).is_none() {
                return Err(invalid(
                    format!("actions.{name}"),
                    format!("unknown action; the actions are {}", Action::names()),
                ));
            }
        }
        let mut actions = BTreeMap::new();
        for action in Action::ALL {
            let key = format!("actions.{}", action.as_str());
            let Some(raw_rule) = raw.actions.get(action.as_str()) else {
                return Err(invalid(key, "missing: every action needs a rule".into()));
            };
            let roles = |field: &str, names: &[String]| -> Result<Vec<Role>, RulesError> {
                let key = format!("{key}.{field}");
                if names.is_empty() {
                    let why = if field == "approvers" {
                        "names no approver: every decision needs a second person"
                    } else {
                        "names no role: nobody could propose this action"
                    };
                    return Err(invalid(key, why.into()));
                }
                names
                    .iter()
                    .map(|name| match Role::parse(name) {
                        None => Err(invalid(
                            key.clone(),
                            format!("unknown role `{name}`; the roles are {}", Role::names()),
                        )),
                        Some(Role::Auditor) => Err(invalid(
                            key.clone(),
                            "an auditor reads everything and changes nothing".into(),
                        )),
                        Some(role) => Ok(role),
                    })
                    .collect()
            };
            let proposers = roles("proposers", &raw_rule.proposers)?;
            let approvers = roles("approvers", &raw_rule.approvers)?;
            if NEEDS_REVIEWER.contains(&action) && !approvers.contains(&Role::Reviewer) {
                return Err(invalid(
                    format!("{key}.approvers"),
                    "must include `reviewer`: terminating, resuming, suppressing a \
                     false match and writing off need a reviewer's approval"
                        .into(),
                ));
            }
            if raw_rule.reasons.is_empty() {
                return Err(invalid(
                    format!("{key}.reasons"),
                    "no reason codes: a proposal must give one".into(),
                ));
            }
            for (code, label) in &raw_rule.reasons {
                let valid_code = !code.is_empty()
                    && code
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if !valid_code {
                    return Err(invalid(
                        format!("{key}.reasons.{code}"),
                        "a reason code is lower-case letters, digits and `_`".into(),
                    ));
                }
                if label.trim().is_empty() {
                    return Err(invalid(
                        format!("{key}.reasons.{code}"),
                        "the label shown to people must not be empty".into(),
                    ));
                }
            }
            actions.insert(
                action,
                ActionRule {
                    proposers,
                    approvers,
                    reasons: raw_rule.reasons.clone(),
                },
            );
        }
        Ok(CaseRules {
            version: raw.version,
            actions,
        })
    }

    /// The rules shipped in `rules/cases.toml`.
    pub fn default_rules() -> CaseRules {
        // The shipped file is checked by a test; failing here is a build defect.
        CaseRules::from_toml(DEFAULT_RULES_TOML).expect("the shipped case rules are valid")
    }

    /// The rules in `path`, or in `rules/cases.toml` when that exists in
    /// the working directory, or the shipped ones. An error names the file.
    pub fn load(path: Option<&std::path::Path>) -> Result<CaseRules, String> {
        let default = std::path::Path::new(DEFAULT_RULES_PATH);
        let path = match path {
            Some(p) => p,
            None if default.exists() => default,
            None => return Ok(CaseRules::default_rules()),
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        CaseRules::from_toml(&text)
            .map_err(|e| format!("the case rules in {} are invalid: {e}", path.display()))
    }

    /// The rule of one action (validation guarantees there is one).
    pub fn rule(&self, action: Action) -> &ActionRule {
        &self.actions[&action]
    }

    /// The label of a reason code of an action, if the code is one of its reasons.
    pub fn reason_label(&self, action: Action, code: &str) -> Option<&str> {
        self.rule(action).reasons.get(code).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        CaseRules::from_toml(text)
            .expect_err("the rules should be refused")
            .to_string()
    }

    fn shipped_with(from: &str, to: &str) -> String {
        assert!(
            DEFAULT_RULES_TOML.contains(from),
            "{from} is in the shipped file"
        );
        DEFAULT_RULES_TOML.replacen(from, to, 1)
    }

    #[test]
    fn shipped_rules_load_with_a_rule_for_every_action() {
        let rules = CaseRules::from_toml(DEFAULT_RULES_TOML).unwrap();
        for action in Action::ALL {
            assert!(!rules.rule(action).reasons.is_empty(), "{action}");
        }
        assert_eq!(
            rules.reason_label(Action::FalseMatch, "namesake"),
            Some("同名同姓非本人")
        );
        assert_eq!(
            rules.reason_label(Action::ConfirmDeath, "death_confirmed_by_registry"),
            Some("户籍注销确认死亡")
        );
    }

    #[test]
    fn shipped_rules_need_one_reviewer_by_default_and_checker_and_reviewer_to_write_off() {
        let rules = CaseRules::default_rules();
        assert_eq!(rules.rule(Action::ConfirmDeath).approvers, [Role::Reviewer]);
        assert_eq!(rules.rule(Action::Resume).proposers, [Role::Caseworker]);
        assert_eq!(
            rules.rule(Action::WriteOff).approvers,
            [Role::Checker, Role::Reviewer]
        );
    }

    #[test]
    fn an_unknown_approver_role_is_refused_naming_its_key() {
        let text = shipped_with(
            "approvers = [\"checker\", \"reviewer\"]",
            "approvers = [\"boss\", \"reviewer\"]",
        );
        let message = error_of(&text);
        assert!(message.contains("actions.write_off.approvers"), "{message}");
        assert!(message.contains("`boss`"), "{message}");
    }

    #[test]
    fn an_auditor_as_approver_is_refused() {
        let text = shipped_with(
            "approvers = [\"checker\", \"reviewer\"]",
            "approvers = [\"auditor\", \"reviewer\"]",
        );
        assert!(error_of(&text).contains("actions.write_off.approvers"));
    }

    #[test]
    fn a_rule_with_no_approver_is_refused_naming_its_key() {
        let text = shipped_with(
            "[actions.close_duplicate]\nproposers = [\"caseworker\"]\napprovers = [\"reviewer\"]",
            "[actions.close_duplicate]\nproposers = [\"caseworker\"]\napprovers = []",
        );
        let message = error_of(&text);
        assert!(
            message.contains("actions.close_duplicate.approvers"),
            "{message}"
        );
    }

    #[test]
    fn an_action_without_reasons_is_refused_naming_its_key() {
        let text = shipped_with(
            "[actions.send_to_video.reasons]\nevidence_unclear = \"证据不足需视频核实\"\nunreachable = \"无法联系本人\"\nconflicting_records = \"记录相互矛盾\"\n",
            "",
        );
        let message = error_of(&text);
        assert!(
            message.contains("actions.send_to_video.reasons"),
            "{message}"
        );
    }

    #[test]
    fn a_missing_action_is_refused_naming_it() {
        let text = shipped_with("[actions.resume]", "[actions.unused]");
        let message = error_of(&text);
        assert!(message.contains("actions.unused"), "{message}");
    }

    #[test]
    fn termination_without_a_reviewer_is_refused() {
        let text = shipped_with(
            "[actions.confirm_death]\nproposers = [\"caseworker\"]\napprovers = [\"reviewer\"]",
            "[actions.confirm_death]\nproposers = [\"caseworker\"]\napprovers = [\"checker\"]",
        );
        let message = error_of(&text);
        assert!(
            message.contains("actions.confirm_death.approvers"),
            "{message}"
        );
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let text = format!("{DEFAULT_RULES_TOML}\n[actions.resume.extra]\n");
        assert!(matches!(
            CaseRules::from_toml(&text),
            Err(RulesError::Parse(_))
        ));
    }
}
