//! `vigil user add|disable|enable|list`: the people who work the queue and
//! their roles. Every change is audited by the library as the command
//! line's actor (`system:<os user>`).

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use vigil::audit;
use vigil::cases::Role;
use vigil::cases::users;
use vigil::config::Settings;

use super::{open_store, read_password};

#[derive(Subcommand)]
pub enum UserAction {
    /// Add a user. The password is asked for (not echoed) on a terminal,
    /// else read as one line from standard input.
    Add {
        /// The login name, as every history and audit entry will show it.
        name: String,
        /// What the user may do.
        #[arg(long, value_parser = role_parser())]
        role: Role,
    },
    /// Disable a user: they stay in every history but may do nothing.
    Disable { name: String },
    /// Enable a disabled user again.
    Enable { name: String },
    /// List the users: name, role, enabled, created.
    List,
}

/// `--role`, from the five roles' names (clap lists them in `--help` and in
/// its error for any other word).
fn role_parser() -> impl clap::builder::TypedValueParser<Value = Role> {
    PossibleValuesParser::new(Role::ALL.map(Role::as_str))
        .try_map(|name| Role::parse(&name).ok_or(format!("no role is named {name}")))
}

pub async fn run(action: UserAction, settings: &Settings) -> Result<ExitCode> {
    let store = open_store(settings).await?;
    let by = audit::cli_actor();
    match action {
        UserAction::Add { name, role } => {
            let password = read_password(&format!("password for {name}: "))?;
            let user = users::add_user(&store, &name, role, &password, &by).await?;
            println!("user {} added as {}", user.name, user.role);
        }
        UserAction::Disable { name } => {
            let (user, changed) = users::disable_user(&store, &name, &by).await?;
            if changed {
                println!("user {} disabled", user.name);
            } else {
                println!("user {} was already disabled", user.name);
            }
        }
        UserAction::Enable { name } => {
            let (user, changed) = users::enable_user(&store, &name, &by).await?;
            if changed {
                println!("user {} enabled", user.name);
            } else {
                println!("user {} was already enabled", user.name);
            }
        }
        UserAction::List => {
            let all = users::list_users(&store)
                .await
                .context("listing the users")?;
            if all.is_empty() {
                println!("no users yet; `vigil user add NAME --role ROLE` adds one");
                return Ok(ExitCode::SUCCESS);
            }
            let width = all
                .iter()
                .map(|u| u.name.chars().count())
                .max()
                .unwrap_or(0)
                .max(4);
            println!(
                "{:<width$}  {:<10}  {:<7}  created_at",
                "name", "role", "enabled"
            );
            for u in all {
                println!(
                    "{:<width$}  {:<10}  {:<7}  {}",
                    u.name,
                    u.role.as_str(),
                    if u.enabled { "yes" } else { "no" },
                    u.created_at
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
