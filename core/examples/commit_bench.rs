//! Benchmark for issue 2: one-change commit into a running configuration of N
//! extensions, and rendering every UCI package for it. Run by tests/bench/core/run.sh.
//!
//! Usage: commit_bench [N] [ROUNDS]

use besip_core::datastore::{CommitOptions, Datastore, NoReload, Source, TestOption, WithDefaults};
use besip_core::edit::{DefaultOperation, ErrorOption};
use besip_core::filter::Filter;
use besip_core::paths::Layout;
use besip_core::schema::Schema;
use std::time::{Duration, Instant};

/// The list the benchmark fills: PBX extensions when the module is present.
fn entry_xml(i: usize, variant: usize, have_pbx: bool) -> String {
    if have_pbx {
        format!(
            "<pbx xmlns=\"urn:besip:pbx\"><extension><number>{}</number><display-name>Extension {i} v{variant}</display-name><password>secret{i}</password></extension></pbx>",
            10_000 + i
        )
    } else {
        format!(
            "<system xmlns=\"urn:besip:system\"><user><name>user{i}</name><full-name>User {i} v{variant}</full-name><group>operator</group></user></system>"
        )
    }
}

fn edit(store: &mut Datastore, xml: &str) {
    let elements = besip_core::xml::parse(&format!("<config>{xml}</config>")).expect("xml");
    store
        .edit_candidate(
            &elements[0].children,
            DefaultOperation::Merge,
            ErrorOption::StopOnError,
            TestOption::Set,
        )
        .unwrap_or_else(|e| panic!("edit: {e}"));
}

fn median(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let p95 = samples[(samples.len() * 95 / 100).min(samples.len() - 1)];
    (samples[samples.len() / 2], p95)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let rounds: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50);
    let have_pbx = Schema::get()
        .expect("schema")
        .besip_modules()
        .any(|m| m.name == "besip-pbx");
    let list = if have_pbx {
        "/pbx/extension"
    } else {
        "/system/user (besip-pbx.yang not present)"
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Datastore::open(Layout::new(dir.path())).expect("open");

    let started = Instant::now();
    let bulk: String = (0..n).map(|i| entry_xml(i, 0, have_pbx)).collect();
    edit(&mut store, &bulk);
    store
        .commit(CommitOptions::default(), &NoReload)
        .await
        .expect("initial commit");
    println!("list: {list}, entries: {n}");
    println!(
        "initial load + commit of {n} entries: {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );

    let mut edit_times = Vec::new();
    let mut commit_times = Vec::new();
    let mut totals = Vec::new();
    for round in 0..rounds {
        let t0 = Instant::now();
        edit(
            &mut store,
            &entry_xml(round * 7919 % n, round + 1, have_pbx),
        );
        let t1 = Instant::now();
        let outcome = store
            .commit(CommitOptions::default(), &NoReload)
            .await
            .expect("commit");
        let t2 = Instant::now();
        assert_eq!(
            outcome.changed_packages.len(),
            1,
            "exactly one package changes"
        );
        edit_times.push(t1 - t0);
        commit_times.push(t2 - t1);
        totals.push(t2 - t0);
    }
    // A structural change: adding one extension (validated alone when its list
    // is self-contained, see core/src/validation_scope.rs; else the full tree).
    let mut add_totals = Vec::new();
    for round in 0..rounds {
        let t0 = Instant::now();
        edit(&mut store, &entry_xml(n + round, 0, have_pbx));
        store
            .commit(CommitOptions::default(), &NoReload)
            .await
            .expect("commit");
        add_totals.push(t0.elapsed());
    }
    // get-config of everything, and with a subtree filter selecting the list.
    let filter_xml = if have_pbx {
        "<pbx xmlns=\"urn:besip:pbx\"><extension/></pbx>"
    } else {
        "<system xmlns=\"urn:besip:system\"><user/></system>"
    };
    let subtree = Filter::Subtree(besip_core::xml::parse(filter_xml).expect("filter"));
    let mut get_all = Vec::new();
    let mut get_filtered = Vec::new();
    for _ in 0..rounds.min(20) {
        let t0 = Instant::now();
        let all = store
            .get_config(Source::Running, &Filter::All, WithDefaults::Explicit)
            .expect("get-config");
        get_all.push(t0.elapsed());
        let t0 = Instant::now();
        let filtered = store
            .get_config(Source::Running, &subtree, WithDefaults::Explicit)
            .expect("get-config");
        get_filtered.push(t0.elapsed());
        assert!(
            filtered.len() * 2 > all.len() || !have_pbx,
            "the filter selects the bulk of the data"
        );
    }
    let mut render_times = Vec::new();
    for _ in 0..rounds.min(20) {
        let t0 = Instant::now();
        let mut bytes = 0;
        let modules: Vec<String> = store
            .schema()
            .besip_modules()
            .map(|m| m.name.clone())
            .collect();
        for module in modules {
            bytes += store
                .render_text(Source::Running, &module)
                .expect("module")
                .len();
        }
        render_times.push(t0.elapsed());
        assert!(bytes > 0);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (e50, e95) = median(edit_times);
    let (c50, c95) = median(commit_times);
    let (t50, t95) = median(totals);
    let (r50, r95) = median(render_times);
    let (a50, a95) = median(add_totals);
    let (g50, g95) = median(get_all);
    let (f50, f95) = median(get_filtered);
    println!(
        "edit-config of one entry:        median {:.2} ms  p95 {:.2} ms",
        ms(e50),
        ms(e95)
    );
    println!(
        "commit of that change:           median {:.2} ms  p95 {:.2} ms",
        ms(c50),
        ms(c95)
    );
    println!(
        "edit + commit (one value change): median {:.2} ms  p95 {:.2} ms   (target < 20 ms)",
        ms(t50),
        ms(t95)
    );
    println!(
        "add one entry + commit:          median {:.2} ms  p95 {:.2} ms",
        ms(a50),
        ms(a95)
    );
    println!(
        "get-config, whole running:        median {:.2} ms  p95 {:.2} ms",
        ms(g50),
        ms(g95)
    );
    println!(
        "get-config, subtree filter on the list: median {:.2} ms  p95 {:.2} ms",
        ms(f50),
        ms(f95)
    );
    println!(
        "render all UCI packages:         median {:.2} ms  p95 {:.2} ms",
        ms(r50),
        ms(r95)
    );
}
