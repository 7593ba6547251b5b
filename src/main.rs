use clap::Parser;
use klab::cli::{Cli, Command, LabCommand};
use klab::cmd;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    if let Err(e) = klab::cancel::install_signal_handlers() {
        klab::errln!("klab: cannot install signal handlers: {e}");
        return ExitCode::from(1);
    }
    // Commands that measure on this machine hold it while they run; a lab
    // name that names nothing, or a workload that cannot run, is said
    // first, whoever holds the machine.
    if let Err(e) = checked_first(&cli.command) {
        return ExitCode::from(cmd::exit_code(Err(e)));
    }
    let machine = if measures_here(&cli.command) {
        match klab::app::machine::acquire() {
            Ok(l) => Some(l),
            Err(e) => return ExitCode::from(cmd::exit_code(Err(e))),
        }
    } else {
        None
    };
    let result = match &cli.command {
        Command::Run(a) => cmd::run::execute(a),
        Command::Capacity(a) => cmd::capacity::execute(a),
        Command::Knobs(a) => cmd::knobs::execute(a),
        Command::Compare(a) => cmd::compare::execute(a),
        Command::Bench(a) => cmd::bench::execute(a),
        Command::Lab(LabCommand::List(a)) => cmd::lab::list(a),
        Command::Lab(LabCommand::Show(a)) => cmd::lab::show(a),
        Command::Lab(LabCommand::Run(a)) => cmd::lab::run(a),
        Command::Lab(LabCommand::Check(a)) => cmd::lab::check(a),
        Command::Lab(LabCommand::Rehearse(a)) => cmd::rehearse::execute(a),
        Command::Demo(a) => cmd::demo::execute(a),
        Command::Tune(a) => cmd::tune::execute(a),
        Command::TuneBench(a) => cmd::tune_bench::bench(a),
        Command::Produce(a) => cmd::pods::produce(a),
        Command::Consume(a) => cmd::pods::consume(a),
        Command::Broker(klab::cli::BrokerCommand::Render(a)) => cmd::broker::render_cmd(a),
        Command::Broker(klab::cli::BrokerCommand::Exec(a)) => cmd::broker::exec_cmd(a),
        Command::Broker(klab::cli::BrokerCommand::Set(a)) => cmd::broker::set_cmd(a),
        Command::Ui(a) => cmd::ui::execute(a),
        Command::Doctor(a) => cmd::doctor::execute(a),
        Command::Class(a) => cmd::class::execute(a),
    };
    let ending = cmd::ending(&result);
    let code = cmd::exit_code(result);
    // The run's hand-in file (lab run, lab check, demo), with the exit code
    // klab returns, on the last line of its output.
    if let Some(bundle) = klab::lab::bundle::seal(student(&cli.command), &ending) {
        klab::outln!("hand in: {}", bundle.display());
    }
    // The measurement is over: the machine is free for the next one while
    // a live view (--ui without --ui-exit) stays up until Ctrl-C.
    drop(machine);
    klab::ui::linger();
    ExitCode::from(code)
}

/// Whether a command puts a load on this machine (and so must have it to
/// itself): not the pods' entrypoints (each runs alone in its pod), not a
/// demo on Kubernetes, not the commands that only read or print.
fn measures_here(c: &Command) -> bool {
    use klab::cli::{DemoTarget, LabCommand};
    match c {
        Command::Run(_)
        | Command::Capacity(_)
        | Command::Tune(_)
        | Command::TuneBench(_)
        | Command::Bench(_) => true,
        Command::Lab(LabCommand::Run(_) | LabCommand::Check(_) | LabCommand::Rehearse(_)) => true,
        Command::Demo(a) => a.target == DemoTarget::Local,
        _ => false,
    }
}

/// The labs a lab command names exist and `klab run`'s workload can run
/// (bad input, exit 2, before the machine is taken or anything starts).
fn checked_first(c: &Command) -> anyhow::Result<()> {
    match c {
        Command::Run(a) => a.workload.workload().map(|_| ()),
        Command::Lab(LabCommand::Run(a)) => {
            klab::lab::load_with(a.session.dir.labs.as_deref(), &a.lab).map(|_| ())
        }
        Command::Lab(LabCommand::Check(a)) => {
            klab::lab::load_with(a.session.dir.labs.as_deref(), &a.lab).map(|_| ())
        }
        Command::Lab(LabCommand::Rehearse(a)) => cmd::rehearse::check_targets(a),
        _ => Ok(()),
    }
}

/// `--student` (or `KLAB_STUDENT`) of the commands that hand in a bundle.
fn student(c: &Command) -> Option<&str> {
    use klab::cli::LabCommand;
    match c {
        Command::Lab(LabCommand::Run(a)) => a.hand_in.student.as_deref(),
        Command::Lab(LabCommand::Check(a)) => a.hand_in.student.as_deref(),
        Command::Demo(a) => a.hand_in.student.as_deref(),
        _ => None,
    }
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "klab=info,warn",
        _ => "klab=debug,info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colour only for a person at a terminal: piped or redirected output
    // (a file, `| tee`, CI) gets plain text; NO_COLOR turns it off too.
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_ansi(colour)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
