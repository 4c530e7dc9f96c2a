//! Templates through the real render worker: this test executable is its own worker (it has
//! its own `main`, `harness = false`, which calls `serve_if_asked` first, as the binaries
//! do), so every case below runs in a child process under the OS memory and time bounds.
//!
//! One case per way a template can grow a value (every operator and filter that can), each
//! refused with the named memory error within its wall-clock budget; values that stay big
//! but loop long, refused with the named time error; and the ordinary paths (output equal to
//! in-process rendering, fuel, output, undefined names, a fresh worker after a killed one, a
//! program that is no worker).
//!
//! `cargo test -p airlift-render --test bounded_worker [NAME…]` runs the cases whose name
//! contains one of the NAMEs.

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use airlift_render::isolate::{self, Isolation, WorkerCommand};
use airlift_render::template::{
    TemplateCause, TemplateError, TemplateLimit, MAX_TEMPLATE_MEMORY, TEMPLATE_FUEL,
};
use airlift_render::{BundleInfo, ReleaseInfo, Renderer};

/// What a case expects.
enum Expect {
    /// The named memory error at the default bound.
    Memory,
    /// The named time error at the case's bound.
    Time,
}

/// A hostile template and what stops it.
struct Hostile {
    name: &'static str,
    source: &'static str,
    expect: Expect,
}

/// Every growth path: operators (`~`, `+` on strings and lists, `*` on lists), filters that
/// build bigger values (`replace`, `join`, `indent`, `format`, `split`, `tojson`, `list`,
/// `b64encode`, and any copying filter accumulated), and captured blocks.
const HOSTILE: &[Hostile] = &[
    Hostile {
        name: "concat_tilde_doubling_macro",
        source: "{% macro d(s, n) %}{% if n > 0 %}{{ d(s ~ s, n - 1) }}{% else %}{{ s|length }}\
                 {% endif %}{% endmacro %}{{ d('x', 40) }}",
        expect: Expect::Memory,
    },
    Hostile {
        name: "replace_squaring",
        source: "{% set s = 'x' * 1000 %}{% set s = s|replace('x', s) %}\
                 {% set s = s|replace('x', s) %}{{ s|length }}",
        expect: Expect::Memory,
    },
    Hostile {
        name: "plus_string_doubling_loop",
        source: "{% set ns = namespace(s='x') %}{% for i in range(40) %}\
                 {% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
        expect: Expect::Memory,
    },
    Hostile {
        name: "plus_list_doubling_materialised",
        source: "{% set ns = namespace(l=[0]) %}{% for i in range(40) %}\
                 {% set ns.l = (ns.l + ns.l)|list %}{% endfor %}{{ ns.l|length }}",
        expect: Expect::Memory,
    },
    Hostile {
        name: "list_repetition_materialised",
        source: "{{ (range(100000)|list * 100000)|list|length }}",
        expect: Expect::Memory,
    },
    Hostile {
        name: "plus_list_accumulating_distinct_strings",
        source: "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}\
                 {% set ns.l = ns.l + ['x' * 1000000 ~ i] %}{% endfor %}{{ ns.l|length }}",
        expect: Expect::Memory,
    },
    Hostile {
        name: "join_of_repeated_strings",
        source: "{{ (['x' * 10000000] * 10000)|join|length }}",
        expect: Expect::Memory,
    },
    Hostile {
        name: "indent_width",
        source: "{{ ('a\\n' * 1000)|indent(100000000)|length }}",
        expect: Expect::Memory,
    },
    Hostile {
        name: "format_doubling_loop",
        source: "{% set ns = namespace(s='x') %}{% for i in range(40) %}\
                 {% set ns.s = '%s%s'|format(ns.s, ns.s) %}{% endfor %}{{ ns.s|length }}",
        expect: Expect::Memory,
    },
    Hostile {
        name: "captured_block_doubling",
        source: "{% set ns = namespace(s='x') %}{% for i in range(40) %}\
                 {% set t %}{{ ns.s }}{{ ns.s }}{% endset %}{% set ns.s = t %}{% endfor %}\
                 {{ ns.s|length }}",
        expect: Expect::Memory,
    },
    Hostile {
        name: "b64encode_growth_loop",
        source: "{% set ns = namespace(s='x' * 90000000) %}{% for i in range(20) %}\
                 {% set ns.s = ns.s|b64encode %}{% endfor %}{{ ns.s|length }}",
        expect: Expect::Memory,
    },
    Hostile {
        name: "split_into_many_strings",
        source: "{{ ('x ' * 45000000)|split|list|length }}",
        expect: Expect::Memory,
    },
    Hostile {
        name: "tojson_of_a_huge_list",
        source: "{{ (range(100000)|list * 10000)|list|tojson|length }}",
        expect: Expect::Memory,
    },
    Hostile {
        name: "copies_accumulated_in_a_list",
        source: "{% set big = 'x' * 90000000 %}{% set ns = namespace(l=[]) %}\
                 {% for i in range(40) %}{% set ns.l = ns.l + [big|upper] %}{% endfor %}\
                 {{ ns.l|join|length }}",
        expect: Expect::Memory,
    },
    Hostile {
        name: "sum_over_a_lazy_huge_list",
        source: "{{ (range(100000)|list * 100000)|sum }}",
        expect: Expect::Time,
    },
    Hostile {
        name: "big_copies_in_a_long_loop",
        source: "{% set big = 'x' * 50000000 %}{% for i in range(100000) %}\
                 {% set t = big|upper %}{% endfor %}done",
        expect: Expect::Time,
    },
];

/// The time bound the time cases run with (the mechanism is the same as at the default).
const CASE_TIME: Duration = Duration::from_secs(2);
/// A memory case must be refused within this, at the default memory bound (most are refused
/// in 0.1–3 s on the 2-core CI machine; a list doubled and materialised takes longest).
const MEMORY_BUDGET: Duration = Duration::from_secs(30);

fn renderer(isolation: Isolation) -> Renderer {
    Renderer::with_context(
        serde_json::json!({"web": {"replicas": 11, "title": "Acme", "token": "s3cr3t"}}),
        &BundleInfo {
            name: "demo".into(),
            version: "1.2.3".into(),
        },
        &ReleaseInfo {
            name: "demo".into(),
            namespace: "demo-ns".into(),
            revision: 1,
        },
    )
    .with_platform(serde_json::json!({"storage": {"fast": {"className": "gp3"}}}))
    .with_isolation(isolation)
}

fn worker() -> Isolation {
    Isolation::Worker(WorkerCommand::current_exe())
}

fn hostile(case: &Hostile) -> Result<(), String> {
    let (isolation, budget) = match case.expect {
        // A long time bound, so that on a loaded machine it is the memory bound that stops
        // the slower growths (a list doubled and materialised writes every element).
        Expect::Memory => (
            Isolation::Worker(WorkerCommand::current_exe().with_time(MEMORY_BUDGET)),
            MEMORY_BUDGET,
        ),
        Expect::Time => (
            Isolation::Worker(WorkerCommand::current_exe().with_time(CASE_TIME)),
            CASE_TIME + Duration::from_secs(5),
        ),
    };
    let started = Instant::now();
    let result = renderer(isolation).render("hostile.yaml", case.source);
    let took = started.elapsed();
    let err = match result {
        Ok(text) => return Err(format!("rendered ({} bytes)", text.len())),
        Err(e) => e,
    };
    let want = match case.expect {
        Expect::Memory => TemplateLimit::Memory {
            bytes: MAX_TEMPLATE_MEMORY,
        },
        Expect::Time => TemplateLimit::Time { limit: CASE_TIME },
    };
    if err.limit != Some(want) {
        return Err(format!("expected {want:?}, got {err:?}"));
    }
    let text = err.to_string();
    let named = match case.expect {
        Expect::Memory => "failed to render: it needed more than the 512 MiB memory limit",
        Expect::Time => "failed to render: it ran longer than the 2 s time limit",
    };
    if !text.starts_with("template `hostile.yaml` ") || !text.contains(named) {
        return Err(format!("message: {text}"));
    }
    if took > budget {
        return Err(format!("took {took:?}, budget {budget:?}"));
    }
    Ok(())
}

fn expect_limit(err: TemplateError, want: TemplateLimit) -> Result<(), String> {
    if err.limit == Some(want) {
        Ok(())
    } else {
        Err(format!("expected {want:?}, got {err:?}"))
    }
}

/// Ordinary paths through the worker.
fn ordinary(name: &str) -> Result<(), String> {
    match name {
        "same_output_as_in_process" => {
            let src = "replicas: {{ config.web.replicas }}\nv: {{ bundle.version }}\n\
                       ns: {{ release.namespace }}\nsc: {{ platform.storage.fast.className }}\n\
                       t: {{ config.web.token | b64encode }}\nj: {{ config.web | tojson }}\n";
            let in_process = renderer(Isolation::InProcess)
                .render("a.yaml", src)
                .map_err(|e| e.to_string())?;
            let worker = renderer(worker());
            for _ in 0..3 {
                let out = worker.render("a.yaml", src).map_err(|e| e.to_string())?;
                if out != in_process {
                    return Err(format!("{out:?} != {in_process:?}"));
                }
            }
            Ok(())
        }
        "fuel_is_named_through_the_worker" => {
            let src = "{% macro d(n) %}{% if n > 0 %}{{ d(n - 1) }}{{ d(n - 1) }}{% endif %}x\
                       {% endmacro %}{{ d(40) }}";
            let err = renderer(worker())
                .render("bomb.yaml", src)
                .err()
                .ok_or("rendered")?;
            let text = err.to_string();
            if !text.contains(&format!("more than {TEMPLATE_FUEL} instructions")) {
                return Err(text);
            }
            expect_limit(err, TemplateLimit::Fuel)
        }
        "output_is_named_through_the_worker" => {
            let src = "{% for i in range(100) %}{{ 'x' * 1000000 }}{% endfor %}";
            let err = renderer(worker())
                .render("big.yaml", src)
                .err()
                .ok_or("rendered")?;
            expect_limit(err, TemplateLimit::Output)
        }
        "undefined_names_file_line_and_path" => {
            let err = renderer(worker())
                .render("t.yaml", "a: 1\nb: {{ config.web.replcas }}\n")
                .err()
                .ok_or("rendered")?;
            let text = err.to_string();
            let want = "template `t.yaml` failed to render at line 2: `config.web.replcas` is \
                        not defined";
            if text != want || !err.source.to_string().contains("undefined value") {
                return Err(format!("{text} / {}", err.source));
            }
            Ok(())
        }
        "a_killed_worker_is_replaced_for_the_next_template" => {
            let r = renderer(worker());
            let first = r
                .render("hostile.yaml", HOSTILE[0].source)
                .err()
                .ok_or("the hostile template rendered")?;
            expect_limit(
                first,
                TemplateLimit::Memory {
                    bytes: MAX_TEMPLATE_MEMORY,
                },
            )?;
            let out = r
                .render("next.yaml", "r: {{ config.web.replicas }}")
                .map_err(|e| e.to_string())?;
            if out != "r: 11" {
                return Err(out);
            }
            Ok(())
        }
        "a_chosen_memory_bound_is_applied_and_named" => {
            let bound = 256u64 << 20;
            let err = renderer(Isolation::Worker(
                WorkerCommand::current_exe().with_memory(bound),
            ))
            .render("hostile.yaml", HOSTILE[0].source)
            .err()
            .ok_or("rendered")?;
            let text = format!("{err}: {}", err.source);
            if !text.contains("more than the 256 MiB memory limit")
                || !text.contains("its address space is limited to 256 MiB")
            {
                return Err(text);
            }
            expect_limit(err, TemplateLimit::Memory { bytes: bound })
        }
        "deep_recursion_is_refused_by_name" => {
            let src = "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}";
            let err = renderer(worker())
                .render("deep.yaml", src)
                .err()
                .ok_or("rendered")?;
            let text = format!("{err}: {}", err.source);
            if err.source.is_worker_failure() || !text.contains("recursion") {
                return Err(text);
            }
            Ok(())
        }
        "templates_cannot_read_files" => {
            for src in [
                "{% include '/etc/passwd' %}",
                "{% import '/etc/passwd' as p %}",
                "{% extends '/etc/passwd' %}",
            ] {
                let err = renderer(worker())
                    .render("read.yaml", src)
                    .err()
                    .ok_or_else(|| format!("{src} rendered"))?;
                let text = err.source.to_string();
                if !text.contains("template not found") || text.contains("root:") {
                    return Err(format!("{src}: {text}"));
                }
            }
            Ok(())
        }
        "a_program_that_is_no_worker_is_named" => {
            let err = renderer(Isolation::Worker(WorkerCommand::program("/bin/true")))
                .render("a.yaml", "x")
                .err()
                .ok_or("rendered")?;
            let text = err.source.to_string();
            if err.limit.is_some()
                || !matches!(err.source, TemplateCause::Worker(_))
                || !text.contains("did not answer as an Airlift render worker")
            {
                return Err(format!("{err:?}"));
            }
            Ok(())
        }
        other => Err(format!("no case {other}")),
    }
}

const ORDINARY: &[&str] = &[
    "same_output_as_in_process",
    "fuel_is_named_through_the_worker",
    "output_is_named_through_the_worker",
    "undefined_names_file_line_and_path",
    "a_killed_worker_is_replaced_for_the_next_template",
    "a_chosen_memory_bound_is_applied_and_named",
    "deep_recursion_is_refused_by_name",
    "templates_cannot_read_files",
    "a_program_that_is_no_worker_is_named",
];

/// This harness's own address space, inherited by its workers (which lower it): should a
/// worker ever lose its bound, a case fails at this bound instead of taking the machine.
const HARNESS_ADDRESS_SPACE: u64 = 4 << 30;

fn main() -> ExitCode {
    isolate::serve_if_asked();
    let bytes = rustix::process::getrlimit(rustix::process::Resource::As)
        .maximum
        .map_or(HARNESS_ADDRESS_SPACE, |max| max.min(HARNESS_ADDRESS_SPACE));
    let limit = rustix::process::Rlimit {
        current: Some(bytes),
        maximum: Some(bytes),
    };
    if let Err(e) = rustix::process::setrlimit(rustix::process::Resource::As, limit) {
        eprintln!("cannot bound this harness's address space: {e}");
        return ExitCode::FAILURE;
    }
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f));
    type Case = Box<dyn Fn() -> Result<(), String> + Send + Sync>;
    let mut cases: Vec<(String, Case)> = Vec::new();
    for case in HOSTILE.iter().filter(|c| wanted(c.name)) {
        cases.push((
            format!("hostile::{}", case.name),
            Box::new(|| hostile(case)),
        ));
    }
    for name in ORDINARY.iter().copied().filter(|n| wanted(n)) {
        cases.push((format!("worker::{name}"), Box::new(move || ordinary(name))));
    }
    println!("\nrunning {} tests", cases.len());
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    // Two at a time: each memory case holds up to the bound for about a second.
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((name, case)) = cases.get(i) else {
                    break;
                };
                let started = Instant::now();
                let result = case();
                let took = started.elapsed().as_secs_f64();
                match result {
                    Ok(()) => println!("test {name} ... ok ({took:.2} s)"),
                    Err(e) => {
                        println!("test {name} ... FAILED ({took:.2} s)");
                        failures
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(format!("{name}: {e}"));
                    }
                }
            });
        }
    });
    let failures = failures
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if failures.is_empty() {
        println!("\ntest result: ok. {} passed", cases.len());
        ExitCode::SUCCESS
    } else {
        println!("\nfailures:");
        for f in &failures {
            println!("    {f}");
        }
        println!(
            "\ntest result: FAILED. {} passed; {} failed",
            cases.len() - failures.len(),
            failures.len()
        );
        ExitCode::FAILURE
    }
}
