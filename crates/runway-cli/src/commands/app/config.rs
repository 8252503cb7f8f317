//! `runway app config NAME [KEY=VALUE…] [--unset KEY]… [--unmark-secret KEY]… [--json]`

use anyhow::bail;
use clap::Args;
use runway_api::v1::ConfigPatch;

use super::{print_json, properties_table};
use crate::connection::Connection;
use crate::parse::parse_assignment;

#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// The app.
    pub name: String,
    /// Property values to set, e.g. greeting=Hello.
    #[arg(value_name = "KEY=VALUE")]
    pub assignments: Vec<String>,
    /// Properties to unset (back to the manifest's default).
    #[arg(long, value_name = "KEY")]
    pub unset: Vec<String>,
    /// Un-mark a property that an earlier version declared secret, so its
    /// value is shown and stored in plaintext (admin token; a property the
    /// current version declares secret stays secret).
    #[arg(long, value_name = "KEY")]
    pub unmark_secret: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

/// The PATCH body for the given assignments and unsets.
pub fn build_patch(assignments: &[String], unset: &[String]) -> anyhow::Result<ConfigPatch> {
    let mut patch = ConfigPatch::default();
    for a in assignments {
        let (k, v) = parse_assignment(a)?;
        if patch.values.insert(k.clone(), Some(v)).is_some() {
            bail!("property {k:?} is assigned more than once");
        }
    }
    for k in unset {
        let k = k.trim();
        if k.is_empty() {
            bail!("--unset needs a property name");
        }
        if patch.values.insert(k.to_owned(), None).is_some() {
            bail!("property {k:?} is both set and unset (or unset twice)");
        }
    }
    Ok(patch)
}

pub async fn run(args: ConfigArgs) -> anyhow::Result<()> {
    let patch = build_patch(&args.assignments, &args.unset)?;
    let client = args.conn.client().await?;
    let mut props = if patch.values.is_empty() {
        client.config(&args.name).await?
    } else {
        client.set_config(&args.name, &patch).await?
    };
    for key in &args.unmark_secret {
        props = client.unmark_secret(&args.name, key.trim()).await?;
        eprintln!(
            "{}: property {} is no longer secret; its value is shown and stored in plaintext",
            args.name,
            key.trim()
        );
    }
    if args.json {
        return print_json(&props);
    }
    if props.is_empty() {
        eprintln!("{} has no properties", args.name);
        return Ok(());
    }
    print!("{}", properties_table(&props).render());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_from_args() {
        let p = build_patch(&["a=1".into(), "b=x=y".into()], &["c".into()]).unwrap();
        assert_eq!(p.values["a"], Some("1".into()));
        assert_eq!(p.values["b"], Some("x=y".into()));
        assert_eq!(p.values["c"], None);
        let e = build_patch(&["oops".into()], &[]).unwrap_err().to_string();
        assert!(e.contains("\"oops\""), "{e}");
        assert!(build_patch(&["a=1".into()], &["a".into()]).is_err());
        assert!(build_patch(&["a=1".into(), "a=2".into()], &[]).is_err());
    }
}
