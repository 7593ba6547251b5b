use super::Outcome;
use crate::broker::knobs::{self, Mode};
use crate::cli::KnobsArgs;
use crate::stats::table::new_table;

pub fn execute(args: &KnobsArgs) -> anyhow::Result<Outcome> {
    let mut t = new_table(&["key", "type", "default", "changes", "allowed"]);
    for k in knobs::all() {
        if args.dynamic && !k.is_dynamic() {
            continue;
        }
        if let Some(f) = &args.filter
            && !k.name.contains(f.as_str())
        {
            continue;
        }
        let mode = match k.mode {
            Mode::ReadOnly => "restart",
            Mode::PerBroker => "live (per broker)",
            Mode::ClusterWide => "live (cluster-wide)",
        };
        t.add_row(vec![k.name, k.ty, k.default, mode, k.valid]);
    }
    crate::outln!("{t}");
    crate::outln!("heap (-Xms/-Xmx): restart; set with --heap or `heap = \"512m\"` in a lab file");
    Ok(Outcome::Done)
}
