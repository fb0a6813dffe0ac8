//! Scheduler and placement: which runners are loaded, where their layers sit, when they
//! reload, get evicted or expire. Mirrors Ollama's `server/sched.go` at the level a client can
//! observe (fact sheet §4, §5, §7). All of it lives behind one mutex in [`State`].

use std::time::Duration;

use serde_json::{Map, Value};

use crate::catalog::Model;
use crate::duration::KeepAlive;
use crate::fault::{Fault, RecordedRequest};
use crate::scenario::{OtherProcess, Scenario};

const MIB: u64 = 1 << 20;

/// Load-time options as the runner was started with (`needsReload` compares these).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOpts {
    /// Effective per-slot context after capping to the training context.
    pub num_ctx: u64,
    /// -1 = automatic.
    pub num_gpu: i64,
    pub num_batch: Option<Value>,
    pub main_gpu: Option<Value>,
    pub use_mmap: Option<Value>,
    pub num_thread: Option<Value>,
    pub draft_num_predict: Option<Value>,
}

impl LoadOpts {
    /// Effective options: request `options` over model `PARAMETER`s over defaults.
    pub fn resolve(model: &Model, req: &Map<String, Value>, default_ctx: u64) -> LoadOpts {
        let get = |k: &str| req.get(k).or_else(|| model.parameters.get(k)).cloned();
        let as_i64 = |v: Option<Value>| v.and_then(|v| v.as_f64()).map(|f| f as i64);
        let ctx = as_i64(get("num_ctx"))
            .filter(|c| *c > 0)
            .map_or(default_ctx, |c| c as u64);
        LoadOpts {
            num_ctx: ctx.min(model.context_length).max(4),
            num_gpu: as_i64(get("num_gpu")).unwrap_or(-1),
            num_batch: get("num_batch"),
            main_gpu: get("main_gpu"),
            use_mmap: get("use_mmap"),
            num_thread: get("num_thread"),
            draft_num_predict: get("draft_num_predict"),
        }
    }

    /// Ollama's `needsReload` on options: `num_gpu` -1 never forces a reload.
    pub fn needs_reload(&self, request: &LoadOpts) -> bool {
        self.num_ctx != request.num_ctx
            || (request.num_gpu != -1 && request.num_gpu != self.num_gpu)
            || self.num_batch != request.num_batch
            || self.main_gpu != request.main_gpu
            || self.use_mmap != request.use_mmap
            || self.num_thread != request.num_thread
            || self.draft_num_predict != request.draft_num_predict
    }
}

/// A loaded model runner (`llama-server`).
#[derive(Debug, Clone)]
pub struct Runner {
    pub id: u64,
    /// The model that caused the load (shown in `/api/ps`).
    pub model: Model,
    pub opts: LoadOpts,
    pub gpu: Option<usize>,
    pub gpu_layers: u64,
    pub size: u64,
    pub size_vram: u64,
    pub keep_alive: KeepAlive,
    /// Simulated time at which an idle runner expires; `None` while busy or forever.
    pub expires_at: Option<Duration>,
    pub refcount: u32,
    pub generating: u32,
    /// Unload once idle (`keep_alive: 0` while requests were in flight).
    pub unload_when_idle: bool,
    /// Real instant at which loading finishes.
    pub ready_at: tokio::time::Instant,
    pub pid: u32,
    pub port: u16,
}

/// Outcome of [`State::schedule`].
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub runner_id: u64,
    pub ready_at: tokio::time::Instant,
}

/// A scheduling failure, as status + Ollama's error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedError {
    pub status: u16,
    pub message: String,
}

/// Everything mutable in the simulator.
#[derive(Debug)]
pub struct State {
    pub runners: Vec<Runner>,
    /// Added to real elapsed time by `advance_clock`.
    pub clock_offset: Duration,
    pub faults: Vec<Fault>,
    pub other: Vec<OtherProcess>,
    pub reply: Option<String>,
    pub requests: Vec<RecordedRequest>,
    /// Models added by `/api/pull` (listed after the catalog).
    pub pulled: Vec<Model>,
    /// How `/api/pull` requests went (the control API's `stats` shows it).
    pub pulls: crate::pull::PullCounts,
    pub load_count: u64,
    pub reload_count: u64,
    next_id: u64,
    next_pid: u32,
}

impl State {
    /// Fresh state for a scenario.
    pub fn new(sc: &Scenario) -> State {
        State {
            runners: Vec::new(),
            clock_offset: Duration::ZERO,
            faults: Vec::new(),
            other: sc.other_processes.clone(),
            reply: None,
            requests: Vec::new(),
            pulled: Vec::new(),
            pulls: crate::pull::PullCounts::default(),
            load_count: 0,
            reload_count: 0,
            next_id: 1,
            next_pid: 41_230,
        }
    }

    /// Gives the runner of `model` a new pid, as if it had been restarted.
    pub fn replace_runner_pid(&mut self, model: &str) -> Option<(u32, u32)> {
        let new = self.next_pid;
        let r = self.runners.iter_mut().find(|r| r.model.name == model)?;
        self.next_pid += 7;
        let old = r.pid;
        r.pid = new;
        Some((old, new))
    }

    /// Drops idle runners whose keep-alive ran out (evaluated lazily on every access).
    pub fn expire(&mut self, now: Duration) {
        self.runners
            .retain(|r| !(r.refcount == 0 && r.expires_at.is_some_and(|e| e <= now)));
    }

    /// Whether a `ps_lies_gpu` fault names this runner (by the model that loaded it, any
    /// model sharing its blob, or the blob path).
    pub fn ps_lies_for(&self, r: &Runner, catalog_names_for_blob: &[String]) -> bool {
        self.faults.iter().any(|f| match f {
            Fault::PsLiesGpu { model } => {
                let m = crate::catalog::normalize_name(model);
                m == r.model.name
                    || *model == r.model.blob_path
                    || catalog_names_for_blob.contains(&m)
            }
            _ => false,
        })
    }

    /// Whether the GPU backend is gone for every runner.
    pub fn backend_lost(&self) -> bool {
        self.faults.iter().any(|f| matches!(f, Fault::BackendLost))
    }

    /// VRAM used on `gpu` by other processes and by runners (as placed).
    fn used_on(&self, gpu: usize) -> u64 {
        let others: u64 = self
            .other
            .iter()
            .filter(|p| p.gpu == gpu)
            .map(|p| p.bytes)
            .sum();
        let runners: u64 = self
            .runners
            .iter()
            .filter(|r| r.gpu == Some(gpu))
            .map(|r| r.size_vram)
            .sum();
        others + runners
    }

    /// Free bytes per GPU (before the fit margin).
    fn free_per_gpu(&self, sc: &Scenario) -> Vec<u64> {
        sc.gpus
            .iter()
            .enumerate()
            .map(|(i, g)| g.memory_total.saturating_sub(self.used_on(i)))
            .collect()
    }

    /// Evicts one idle runner: shortest keep-alive first, ties by blob path.
    fn evict_one(&mut self, except_key: &str) -> bool {
        let victim = self
            .runners
            .iter()
            .enumerate()
            .filter(|(_, r)| r.refcount == 0 && r.model.blob_path != except_key)
            .min_by(|(_, a), (_, b)| {
                a.keep_alive
                    .sort_key()
                    .cmp(&b.keep_alive.sort_key())
                    .then_with(|| a.model.blob_path.cmp(&b.model.blob_path))
            })
            .map(|(i, _)| i);
        match victim {
            Some(i) => {
                let r = self.runners.remove(i);
                tracing::info!(model = %r.model.name, "evicted runner");
                true
            }
            None => false,
        }
    }

    /// Whether a request for `model` must wait before it is scheduled: it needs a new runner,
    /// the loaded-model cap is reached, and every runner that could make room is busy. Ollama's
    /// scheduler keeps such a request pending until a runner goes idle and can be evicted,
    /// rather than loading past `OLLAMA_MAX_LOADED_MODELS`.
    pub fn must_wait_for_idle(&self, sc: &Scenario, model: &Model) -> bool {
        let key = &model.blob_path;
        !self.runners.iter().any(|r| &r.model.blob_path == key)
            && self.runners.len() >= sc.max_loaded()
            && !self
                .runners
                .iter()
                .any(|r| r.refcount == 0 && &r.model.blob_path != key)
    }

    /// Finds or starts the runner for a request (Ollama's `getRunner` → `load`).
    #[allow(clippy::too_many_arguments)]
    pub fn schedule(
        &mut self,
        sc: &Scenario,
        model: &Model,
        opts: LoadOpts,
        keep_alive: Option<KeepAlive>,
        default_keep_alive: KeepAlive,
        now_real: tokio::time::Instant,
        load_time: Duration,
    ) -> Result<Scheduled, SchedError> {
        let key = model.blob_path.clone();
        if let Some(pos) = self.runners.iter().position(|r| r.model.blob_path == key) {
            if !self.runners[pos].opts.needs_reload(&opts) {
                let r = &mut self.runners[pos];
                r.refcount += 1;
                r.expires_at = None;
                r.unload_when_idle = false;
                if let Some(ka) = keep_alive {
                    r.keep_alive = ka;
                }
                return Ok(Scheduled {
                    runner_id: r.id,
                    ready_at: r.ready_at,
                });
            }
            let old = self.runners.remove(pos);
            tracing::info!(model = %model.name, old_ctx = old.opts.num_ctx, new_ctx = opts.num_ctx, "reloading: load-time options changed");
            self.reload_count += 1;
        }
        if let Some(i) = self
            .faults
            .iter()
            .position(|f| matches!(f, Fault::LoadFailure { .. }))
            && let Fault::LoadFailure { message } = self.faults.remove(i)
        {
            return Err(SchedError {
                status: 500,
                message,
            });
        }
        // OLLAMA_MAX_LOADED_MODELS is a total cap: make room even if memory is free.
        while self.runners.len() >= sc.max_loaded() && self.evict_one(&key) {}

        let kv = model.kv_bytes_per_token() * opts.num_ctx * sc.parallel;
        let overhead = sc.compute_overhead_mib * MIB;
        // Pre-flight (only with another model loaded, only for automatic placement): an
        // estimate above 80% of free VRAM evicts first.
        if opts.num_gpu < 0 && !sc.usable_gpus().is_empty() {
            let estimate = model.file_size + kv;
            while !self.runners.is_empty() {
                let free = self.free_per_gpu(sc).into_iter().max().unwrap_or(0);
                if estimate as f64 <= 0.8 * free as f64 || !self.evict_one(&key) {
                    break;
                }
            }
        }
        let placement = self.place(sc, model, &opts, kv, overhead)?;

        self.load_count += 1;
        let id = self.next_id;
        self.next_id += 1;
        let pid = self.next_pid;
        self.next_pid += 7;
        let ready_at = now_real + load_time;
        self.runners.push(Runner {
            id,
            model: model.clone(),
            opts,
            gpu: placement.gpu,
            gpu_layers: placement.layers,
            size: placement.size,
            size_vram: placement.size_vram,
            keep_alive: keep_alive.unwrap_or(default_keep_alive),
            expires_at: None,
            refcount: 1,
            generating: 0,
            unload_when_idle: false,
            ready_at,
            pid,
            port: 30_000 + (pid % 30_000) as u16,
        });
        Ok(Scheduled {
            runner_id: id,
            ready_at,
        })
    }

    fn place(
        &self,
        sc: &Scenario,
        model: &Model,
        opts: &LoadOpts,
        kv: u64,
        overhead: u64,
    ) -> Result<Placement, SchedError> {
        let units = model.block_count + 1;
        let total = model.file_size + kv + overhead;
        let per_unit = (model.file_size + kv).div_ceil(units);
        let cpu = Placement {
            gpu: None,
            layers: 0,
            size: total,
            size_vram: 0,
        };
        if opts.num_gpu == 0 || sc.usable_gpus().is_empty() {
            return Ok(cpu);
        }
        let free = self.free_per_gpu(sc);
        let Some((gpu, free_raw)) = free
            .iter()
            .copied()
            .enumerate()
            .max_by_key(|(i, f)| (*f, std::cmp::Reverse(*i)))
        else {
            return Ok(cpu);
        };
        if opts.num_gpu > 0 {
            // An explicit layer count bypasses fit: too many layers is an OOM, not a spill.
            let n = (opts.num_gpu as u64).min(units);
            let vram = if n == units {
                total
            } else {
                n * per_unit + overhead
            };
            if vram > free_raw {
                return Err(SchedError {
                    status: 500,
                    message: format!(
                        "llama-server reported out-of-memory during startup: CUDA error: out of memory (tried to offload {n} layers, {} MiB needed, {} MiB free)",
                        vram / MIB,
                        free_raw / MIB
                    ),
                });
            }
            return Ok(Placement {
                gpu: Some(gpu),
                layers: n,
                size: total,
                size_vram: vram,
            });
        }
        let free_fit = free_raw.saturating_sub(sc.fit_margin_mib * MIB);
        if total <= free_fit {
            return Ok(Placement {
                gpu: Some(gpu),
                layers: units,
                size: total,
                size_vram: total,
            });
        }
        let n = (free_fit.saturating_sub(overhead) / per_unit.max(1)).min(units - 1);
        if n == 0 {
            return Ok(cpu);
        }
        Ok(Placement {
            gpu: Some(gpu),
            layers: n,
            size: total,
            size_vram: n * per_unit + overhead,
        })
    }

    /// Ends one request on a runner; starts the expiry timer when it was the last one.
    pub fn release(&mut self, runner_id: u64, generated: bool, now: Duration) {
        let Some(pos) = self.runners.iter().position(|r| r.id == runner_id) else {
            return;
        };
        let r = &mut self.runners[pos];
        r.refcount = r.refcount.saturating_sub(1);
        if generated {
            r.generating = r.generating.saturating_sub(1);
        }
        if r.refcount > 0 {
            return;
        }
        match r.keep_alive {
            KeepAlive::For(d) if d.is_zero() => {
                self.runners.remove(pos);
            }
            _ if r.unload_when_idle => {
                self.runners.remove(pos);
            }
            KeepAlive::For(d) => r.expires_at = Some(now + d),
            KeepAlive::Forever => r.expires_at = None,
        }
    }

    /// `keep_alive: 0` on an empty request: unload now, or when in-flight requests end.
    pub fn unload(&mut self, blob_path: &str) {
        if let Some(pos) = self
            .runners
            .iter()
            .position(|r| r.model.blob_path == blob_path)
        {
            if self.runners[pos].refcount == 0 {
                self.runners.remove(pos);
            } else {
                self.runners[pos].unload_when_idle = true;
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Placement {
    gpu: Option<usize>,
    layers: u64,
    size: u64,
    size_vram: u64,
}
