//! `besip-box`: every BESIP program in one executable, chosen by the name it
//! is started as (argv[0]), as busybox does. One copy of tokio, libyang, SSH
//! and the rest instead of five is what makes the router packages small.
//! `besip-box <program> [args]` also works (argv shifted for the program).

use std::process::ExitCode;

macro_rules! program {
    ($module:ident, $file:literal) => {
        #[allow(dead_code, unused_imports, clippy::all)]
        mod $module {
            include!(concat!(env!("OUT_DIR"), "/", $file));
            pub fn multicall_entry() -> std::process::ExitCode {
                std::process::Termination::report(main())
            }
        }
    };
}

program!(netconfd, "netconfd.rs");
program!(pbxd, "pbxd.rs");
program!(secd, "secd.rs");
program!(monitord, "monitord.rs");
program!(cli, "cli.rs");
mod uci_import;

/// Program names (as installed, the links to this binary) and their entries.
const PROGRAMS: [(&str, fn() -> ExitCode); 6] = [
    ("besip-netconfd", netconfd::multicall_entry),
    ("besip-pbxd", pbxd::multicall_entry),
    ("besip-secd", secd::multicall_entry),
    ("besip-monitord", monitord::multicall_entry),
    ("besip", cli::multicall_entry),
    ("besip-uci-import", uci_import::run),
];

fn find(name: &str) -> Option<fn() -> ExitCode> {
    PROGRAMS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, run)| *run)
}

fn main() -> ExitCode {
    return_freed_memory_at_once();
    let invoked = std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    if let Some(run) = find(&invoked) {
        return run();
    }
    // `besip-box besip-pbxd --root /` : the programs parse std::env::args, so
    // re-execute ourselves under the program's name with the rest as arguments.
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else {
        eprintln!("usage: besip-box <program> [args]; programs: {}", names());
        return ExitCode::from(2);
    };
    let program = program.to_string_lossy().into_owned();
    if find(&program).is_none() {
        eprintln!(
            "besip-box: unknown program {program:?}; programs: {}",
            names()
        );
        return ExitCode::from(2);
    }
    let error = exec_as(&program, args.collect());
    eprintln!("besip-box: cannot run {program}: {error}");
    ExitCode::FAILURE
}

/// A router counts idle memory. mimalloc (v3) keeps freed pages for 1 s,
/// purges them lazily, when the same thread allocates again, and commits its
/// 1 GiB arena eagerly on Linux: an idle daemon kept e.g. argon2's 19 MiB
/// block of its last password check for good (netconfd: 21 MiB of anonymous
/// memory after start-up, 2.4 MiB with these two options). The option numbers
/// are mimalloc.h's enum (v3, as bundled by libmimalloc-sys 0.1.49); a unit
/// test checks their defaults so a new mimalloc cannot shift them silently.
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn return_freed_memory_at_once() {
    // SAFETY: plain setters of mimalloc's global options, valid at any time.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}

fn names() -> String {
    PROGRAMS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

fn exec_as(program: &str, args: Vec<std::ffi::OsString>) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    match std::env::current_exe() {
        Ok(exe) => std::process::Command::new(exe)
            .arg0(program)
            .args(args)
            .exec(),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option numbers still name the options they were written for:
    /// their documented defaults (eager arena commit 2, purge delay 1000 ms).
    #[test]
    fn mimalloc_option_numbers_name_the_intended_options() {
        if std::env::vars().any(|(k, _)| k.starts_with("MIMALLOC_")) {
            return; // the environment overrides the defaults
        }
        // SAFETY: plain getters of mimalloc's global options.
        unsafe {
            assert_eq!(
                libmimalloc_sys::mi_option_get(MI_OPTION_ARENA_EAGER_COMMIT),
                2
            );
            assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY), 1000);
        }
    }
}
