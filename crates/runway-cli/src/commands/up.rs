#[derive(clap::Args, Debug)]
pub struct UpArgs {}

pub async fn run(_args: UpArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
