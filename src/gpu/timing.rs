//! The profiler: each dispatch timed by GPU timestamp queries where the
//! adapter has them, else by the wall clock (one submission per dispatch).

use super::pipelines::CachedPipeline;
use super::{Gpu, Kernel};
use crate::error::{Error, Result};

/// How the profiler timed the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// GPU timestamp queries around every dispatch (TIMESTAMP_QUERY).
    Timestamps,
    /// No timestamp queries on this adapter: every dispatch is submitted
    /// alone and timed by the wall clock from submit to completion (which
    /// includes the submission's fixed cost).
    WallClock,
}

/// One timed dispatch.
#[derive(Clone, Debug)]
pub struct DispatchTime {
    pub kernel: Kernel,
    /// The pass it served where its kernel serves two ([`Gpu::in_pass`]).
    pub pass: Option<&'static str>,
    pub seconds: f64,
    /// Bytes of every buffer window the dispatch bound (its inputs and
    /// outputs): what a streaming kernel reads or writes once.
    pub bytes: u64,
}

/// Kernel times recorded between [`Gpu::profile_begin`] and
/// [`Gpu::profile_end`], one entry per dispatch in recording order.
#[derive(Clone, Debug)]
pub struct Profile {
    pub timer: Timer,
    pub dispatches: Vec<DispatchTime>,
}

/// Dispatches one timestamp query set times (two queries each; wgpu allows
/// 4,096 queries per set). A session opens another set when one fills, so
/// every dispatch of a step is timed (a ResNet-50 training step has about
/// 7,000 with its per-sample GEMMs).
pub(super) const PROFILE_CAPACITY: u32 = 2048;

/// Query sets one session may open: 131,072 dispatches; later ones are not
/// timed (the profile says how many).
const PROFILE_SETS: usize = 64;

pub(super) struct Profiling {
    timer: Timer,
    /// None: the adapter has no timestamp queries (wall clock).
    queries: Option<Vec<wgpu::QuerySet>>,
    names: Vec<(Kernel, Option<&'static str>)>,
    bytes: Vec<u64>,
    wall: Vec<f64>,
}

impl Gpu {
    /// Starts timing every dispatch: with GPU timestamp queries where the
    /// adapter has them, else by the wall clock, one submission per dispatch.
    /// Pending work is submitted and finished first.
    pub fn profile_begin(&self) -> Result<()> {
        self.sync()?;
        let queries = self.summary.timestamps.then(|| {
            self.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("profile"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * PROFILE_CAPACITY,
            })
        });
        *self.profiling.borrow_mut() = Some(Profiling {
            timer: if queries.is_some() {
                Timer::Timestamps
            } else {
                Timer::WallClock
            },
            queries: queries.map(|q| vec![q]),
            names: Vec::new(),
            bytes: Vec::new(),
            wall: Vec::new(),
        });
        Ok(())
    }

    /// Finishes the recorded work and returns every dispatch's time since
    /// [`Gpu::profile_begin`] (dispatches past the first 131,072 are not timed).
    pub fn profile_end(&self) -> Result<Profile> {
        self.sync()?;
        let Some(p) = self.profiling.borrow_mut().take() else {
            return Err(Error::Gpu("profile_end without profile_begin".into()));
        };
        let seconds = match &p.queries {
            None => p.wall,
            Some(sets) => {
                let mut seconds = Vec::with_capacity(p.names.len());
                for (k, q) in sets.iter().enumerate() {
                    let used = p.names.len().saturating_sub(k * PROFILE_CAPACITY as usize);
                    let count = 2 * used.min(PROFILE_CAPACITY as usize) as u32;
                    if count == 0 {
                        break;
                    }
                    let bytes = count as u64 * 8;
                    let resolve = self.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("profile resolve"),
                        size: bytes,
                        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                        mapped_at_creation: false,
                    });
                    let readback = self.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("profile readback"),
                        size: bytes,
                        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    });
                    self.with_encoder(|e| {
                        e.resolve_query_set(q, 0..count, &resolve, 0);
                        e.copy_buffer_to_buffer(&resolve, 0, &readback, 0, bytes);
                    });
                    self.flush()?;
                    let ticks = self.map_read(&readback)?;
                    let ticks: &[u64] = bytemuck::cast_slice(&ticks);
                    let ns = self.queue.get_timestamp_period() as f64;
                    seconds.extend(
                        ticks
                            .chunks(2)
                            .map(|t| t[1].saturating_sub(t[0]) as f64 * ns * 1e-9),
                    );
                }
                seconds
            }
        };
        Ok(Profile {
            timer: p.timer,
            dispatches: p
                .names
                .into_iter()
                .zip(seconds)
                .zip(p.bytes)
                .map(|(((kernel, pass), seconds), bytes)| DispatchTime {
                    kernel,
                    pass,
                    seconds,
                    bytes,
                })
                .collect(),
        })
    }

    /// Records one dispatch while profiling: with timestamp writes around
    /// its pass, or submitted alone and waited for (wall clock).
    pub(super) fn record_timed_pass(
        &self,
        kernel: Kernel,
        cached: &CachedPipeline,
        bind_group: &wgpu::BindGroup,
        groups: [u32; 3],
        bytes: u64,
    ) -> Result<()> {
        let mut profiling = self.profiling.borrow_mut();
        let cap = PROFILE_CAPACITY as usize;
        let slot = match profiling.as_mut() {
            Some(p) if p.names.len() < cap * PROFILE_SETS => {
                let i = p.names.len();
                if let Some(sets) = p.queries.as_mut() {
                    if i / cap == sets.len() {
                        sets.push(self.device.create_query_set(&wgpu::QuerySetDescriptor {
                            label: Some("profile"),
                            ty: wgpu::QueryType::Timestamp,
                            count: 2 * PROFILE_CAPACITY,
                        }));
                    }
                }
                p.names.push((kernel, self.pass.get()));
                p.bytes.push(bytes);
                Some(i)
            }
            _ => None,
        };
        let queries = slot.and_then(|i| {
            let sets = profiling.as_ref()?.queries.as_ref()?;
            Some((&sets[i / cap], (i % cap) as u32))
        });
        let wall_clock = profiling.as_ref().map(|p| p.timer) == Some(Timer::WallClock);
        self.with_encoder(|enc| {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(kernel),
                timestamp_writes: queries.map(|(q, i)| wgpu::ComputePassTimestampWrites {
                    query_set: q,
                    beginning_of_pass_write_index: Some(2 * i),
                    end_of_pass_write_index: Some(2 * i + 1),
                }),
            });
            pass.set_pipeline(&cached.pipeline);
            pass.set_bind_group(0, bind_group, &[]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        });
        drop(profiling);
        if wall_clock && slot.is_some() {
            // Everything before this dispatch was drained when profiling
            // began or after the previous dispatch: time it alone.
            let t = std::time::Instant::now();
            self.sync()?;
            let seconds = t.elapsed().as_secs_f64();
            if let Some(p) = self.profiling.borrow_mut().as_mut() {
                p.wall.push(seconds);
            }
        }
        Ok(())
    }
}

/// A profile row's name: the kernel, and the pass it served where its
/// kernel serves two (`conv2d_forward_3x3 (backward-input)`,
/// `dense_forward (conv2d 1x1)`).
pub fn row_name(kernel: &str, pass: Option<&str>) -> String {
    match pass {
        Some(p) => format!("{kernel} ({p})"),
        None => kernel.to_string(),
    }
}
