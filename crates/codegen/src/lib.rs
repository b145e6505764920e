//! Code generator: compiles a semantic-IR [`Program`] into a relocatable ELF object for one
//! host ISA (x86-64, arm64, riscv64) with Cranelift.
//!
//! Every IR [`hcontainer_ir::Function`] becomes one host function
//! `extern "C" fn(state: *mut GuestState, entry: u64) -> u64` named `hc_fn_<entry in hex>`
//! (see `hcontainer_abi::calls`). Besides the code, the object holds what the runtime and
//! recode read: the dispatch table (`hc_dispatch_table`, `hc_dispatch_len`), the guest facts
//! (`hc_guest_info`) and the non-allocated `.hcontainer.meta` section
//! (`hcontainer_abi::meta`). `hcontainer-link` links it with the runtime.
//!
//! Module map: [`target`] holds everything that differs per host ISA, `func` translates one
//! function, `emit` writes tables and metadata.
#![deny(missing_docs)]

mod emit;
mod func;
mod target;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cranelift_codegen::ir::{types, AbiParam, Signature};
use cranelift_codegen::isa::CallConv;
use cranelift_codegen::Context;
use cranelift_module::{DataDescription, DataId, FuncId, Linkage, Module, ModuleReloc};
use cranelift_object::{ObjectBuilder, ObjectModule};
use hcontainer_abi::calls::GuestInfo;
use hcontainer_abi::meta::HostIsa;
use hcontainer_ir::Program;
use rayon::prelude::*;

pub use hcontainer_abi::meta::HostIsa as Isa;
pub use hcontainer_abi::meta::MemoryModel;

/// Functions whose IR and Cranelift IR go to stderr while compiling: the entry addresses
/// (hexadecimal, comma-separated) in `HCONTAINER_DUMP_FUNCS`, a debugging aid.
fn dump_request() -> Vec<u64> {
    std::env::var("HCONTAINER_DUMP_FUNCS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok())
        .collect()
}

/// What the object becomes once linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// A static executable: the runtime, this code and the guest's segments linked at their
    /// final addresses (`hcontainer-link::link`). Runtime calls are direct; guest addresses
    /// are constants.
    Executable,
    /// A translation unit (`hcontainer_abi::unit`): a host shared object the runtime loads at
    /// any address for a guest file mapped at any address. Runtime calls go through the
    /// unit header's import table; guest addresses add the bias from the header.
    Unit,
    /// The launcher of a dynamically linked program: an executable without guest code
    /// (the program's units do the work), whose metadata names the program.
    Launcher,
}

/// Facts about the guest executable that go into the object besides the code.
#[derive(Clone, Copy, Debug)]
pub struct GuestDescription {
    /// What the object is for.
    pub output: Output,
    /// Written as `hc_guest_info` for the runtime (executables only).
    pub info: GuestInfo,
    /// SHA-256 of the original executable file.
    pub sha256: [u8; 32],
    /// Size of the original executable file.
    pub file_size: u64,
    /// Whether the guest is position independent (static-pie).
    pub is_pie: bool,
    /// Number of guest instructions translated as traps.
    pub n_traps: u64,
    /// The order plain guest loads and stores keep (recorded in the metadata).
    pub memory_model: MemoryModel,
}

/// Why a program could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    /// Cranelift has no usable ISA for the host.
    #[error("cannot set up the {isa} code generator: {what}")]
    Isa {
        /// Host ISA name.
        isa: &'static str,
        /// What failed.
        what: String,
    },
    /// The IR of a function is malformed (a bad value, a type mismatch, a duplicate block).
    #[error("malformed IR in function {func:#x}, block {block:#x}: {what}")]
    BadIr {
        /// Guest entry of the function.
        func: u64,
        /// Guest address of the block.
        block: u64,
        /// What is wrong.
        what: String,
    },
    /// One guest-state offset is accessed with two different types.
    #[error("function {func:#x} accesses guest state offset {offset} as {first} and as {second}")]
    MixedLocation {
        /// Guest entry of the function.
        func: u64,
        /// Byte offset in `GuestState`.
        offset: u32,
        /// First type seen.
        first: String,
        /// Conflicting type.
        second: String,
    },
    /// Two functions have the same entry address.
    #[error("two functions have the entry {0:#x}")]
    DuplicateFunction(u64),
    /// Cranelift rejected the generated code.
    #[error("Cranelift failed on function {func:#x}: {what}")]
    Compile {
        /// Guest entry of the function.
        func: u64,
        /// Cranelift's message.
        what: String,
    },
    /// Writing the object file failed.
    #[error("writing the object file: {0}")]
    Object(String),
}

/// Words of the dispatch cache of one indirect call or jump site (a power of two).
pub(crate) const DISPATCH_CACHE_WAYS: usize = 8;

/// Result of compiling one function: machine code and relocations, ready to be placed.
struct Compiled {
    id: FuncId,
    align: u64,
    code: Vec<u8>,
    relocs: Vec<ModuleReloc>,
}

/// Runtime entry points called by translated code, declared once per object.
#[derive(Clone, Copy)]
pub(crate) struct RuntimeFns {
    pub syscall: FuncId,
    pub helper: FuncId,
    pub eval_cond: FuncId,
    pub rflags: FuncId,
    pub lookup: FuncId,
    pub unsupported: FuncId,
}

/// Everything the translation of one function may refer to.
pub(crate) struct Shared<'a> {
    pub call_conv: CallConv,
    pub frontend: cranelift_codegen::isa::TargetFrontendConfig,
    /// Patch NaN results to what x86 produces (hosts whose NaN rules differ).
    pub fix_nans: bool,
    /// The host has an atomic 128-bit compare-and-swap.
    pub cas_128: bool,
    /// Follow each atomic operation with a fence (hosts whose atomics are not full barriers).
    pub atomic_fence: bool,
    /// How plain guest loads and stores are ordered (see [`target::Ordering`]).
    pub order: target::Ordering,
    /// Runtime entry points (executables only).
    pub rt: Option<RuntimeFns>,
    /// Guest function entry → its host function.
    pub funcs: &'a HashMap<u64, FuncId>,
    /// Trap string of each `(function index, block index)` that ends in a trap.
    pub trap_strings: &'a HashMap<(usize, usize), DataId>,
    /// Dispatch cache of each `(function index, block index)` that ends in an indirect call
    /// or jump: [`DISPATCH_CACHE_WAYS`] words, each a pointer to a `DispatchEntry` (with its
    /// run-time guest address) the runtime's lookup returned there, or 0; a target address
    /// picks its word by a hash, so a site with several targets keeps each in its own word.
    pub dispatch_caches: &'a HashMap<(usize, usize), DataId>,
    /// Every resume point: guest block address → (host function, entry index).
    pub points: &'a BTreeMap<u64, (FuncId, u64)>,
    /// Recovered jump tables: indirect `jmp` address → distinct targets (`Program::jump_tables`).
    pub jump_tables: &'a BTreeMap<u64, Vec<u64>>,
    /// The unit header (`hcontainer_abi::unit::UnitHeader`) when compiling a unit.
    pub unit: Option<DataId>,
}

fn sig(call_conv: CallConv, params: usize, ret: bool) -> Signature {
    let mut s = Signature::new(call_conv);
    s.params.extend((0..params).map(|_| AbiParam::new(types::I64)));
    if ret {
        s.returns.push(AbiParam::new(types::I64));
    }
    s
}

/// Signature of every translated function: `(state, entry) -> next guest address`.
pub(crate) fn translated_sig(call_conv: CallConv) -> Signature {
    sig(call_conv, 2, true)
}

/// Runtime function signatures, by symbol.
pub(crate) fn runtime_sig(call_conv: CallConv, name: &str) -> Signature {
    use hcontainer_abi::calls as c;
    match name {
        n if n == c::SYSCALL => sig(call_conv, 1, false),
        n if n == c::HELPER => sig(call_conv, 5, true),
        n if n == c::EVAL_COND || n == c::RFLAGS => sig(call_conv, 5, true),
        n if n == c::LOOKUP => sig(call_conv, 1, true),
        // UNSUPPORTED
        _ => sig(call_conv, 3, false),
    }
}

/// Symbol of the translation of the guest function at `entry`.
pub fn function_symbol(entry: u64) -> String {
    format!("hc_fn_{entry:x}")
}

fn module_err(e: cranelift_module::ModuleError) -> CodegenError {
    CodegenError::Object(e.to_string())
}

/// Compile `program` for `isa` into a relocatable ELF object (bytes of the `.o` file).
pub fn compile(
    program: &Program,
    guest: &GuestDescription,
    isa: HostIsa,
) -> Result<Vec<u8>, CodegenError> {
    let target_isa = target::build_isa(isa)?;
    let call_conv = target_isa.default_call_conv();
    let builder = ObjectBuilder::new(
        Arc::clone(&target_isa),
        "hc_translated",
        cranelift_module::default_libcall_names(),
    )
    .map_err(module_err)?;
    let mut module = ObjectModule::new(builder);

    // Runtime imports (executables; a unit calls through its header's import table).
    use hcontainer_abi::calls as c;
    let rt = match guest.output {
        Output::Unit => None,
        Output::Executable | Output::Launcher => {
            let mut import = |name: &str| {
                module
                    .declare_function(name, Linkage::Import, &runtime_sig(call_conv, name))
                    .map_err(module_err)
            };
            Some(RuntimeFns {
                syscall: import(c::SYSCALL)?,
                helper: import(c::HELPER)?,
                eval_cond: import(c::EVAL_COND)?,
                rflags: import(c::RFLAGS)?,
                lookup: import(c::LOOKUP)?,
                unsupported: import(c::UNSUPPORTED)?,
            })
        }
    };

    // Translated functions. In a unit they stay local: an exported symbol of a shared object
    // could be preempted, and calls to it would go through a PLT.
    let func_linkage = match guest.output {
        Output::Executable | Output::Launcher => Linkage::Export,
        Output::Unit => Linkage::Local,
    };
    let mut funcs = HashMap::new();
    let mut ids = Vec::with_capacity(program.functions.len());
    for f in &program.functions {
        let id = module
            .declare_function(&function_symbol(f.entry), func_linkage, &translated_sig(call_conv))
            .map_err(module_err)?;
        if funcs.insert(f.entry, id).is_some() {
            return Err(CodegenError::DuplicateFunction(f.entry));
        }
        ids.push(id);
    }

    // Trap messages, NUL-terminated in read-only data.
    let mut trap_strings = HashMap::new();
    for (fi, f) in program.functions.iter().enumerate() {
        for (bi, b) in f.blocks.iter().enumerate() {
            if let hcontainer_ir::Terminator::Trap { what, .. } = &b.term {
                let id = module.declare_anonymous_data(false, false).map_err(module_err)?;
                let mut d = DataDescription::new();
                let mut bytes: Vec<u8> = what.bytes().filter(|&b| b != 0).collect();
                bytes.push(0);
                d.define(bytes.into_boxed_slice());
                module.define_data(id, &d).map_err(module_err)?;
                trap_strings.insert((fi, bi), id);
            }
        }
    }

    // One zeroed dispatch cache per indirect call or jump.
    let mut dispatch_caches = HashMap::new();
    for (fi, f) in program.functions.iter().enumerate() {
        for (bi, b) in f.blocks.iter().enumerate() {
            use hcontainer_ir::{CallTarget, Terminator};
            if matches!(
                b.term,
                Terminator::JumpIndirect(_) | Terminator::Call { target: CallTarget::Indirect(_), .. }
            ) {
                let id = module.declare_anonymous_data(true, false).map_err(module_err)?;
                let mut d = DataDescription::new();
                d.set_align(8);
                d.define_zeroinit(8 * DISPATCH_CACHE_WAYS);
                module.define_data(id, &d).map_err(module_err)?;
                dispatch_caches.insert((fi, bi), id);
            }
        }
    }
    let unit = match guest.output {
        Output::Executable | Output::Launcher => None,
        Output::Unit => Some(
            module
                .declare_data(hcontainer_abi::unit::HEADER_SYMBOL, Linkage::Hidden, true, false)
                .map_err(module_err)?,
        ),
    };

    // One dispatch entry per distinct block address (the first function holding it wins).
    let mut points: BTreeMap<u64, (FuncId, u64)> = BTreeMap::new();
    for (fi, f) in program.functions.iter().enumerate() {
        for (bi, b) in f.blocks.iter().enumerate() {
            points.entry(b.addr).or_insert((ids[fi], bi as u64));
        }
    }

    let shared = Shared {
        call_conv,
        frontend: target_isa.frontend_config(),
        fix_nans: target::needs_nan_fixups(isa),
        cas_128: target::has_cas_128(isa),
        atomic_fence: target::needs_atomic_fence(isa),
        order: match guest.memory_model {
            MemoryModel::Tso => target::tso_ordering(isa),
            MemoryModel::Relaxed => target::Ordering::Plain,
        },
        rt,
        funcs: &funcs,
        trap_strings: &trap_strings,
        dispatch_caches: &dispatch_caches,
        points: &points,
        jump_tables: &program.jump_tables,
        unit,
    };
    let dump = dump_request();
    let slow_report = std::env::var_os("HCONTAINER_SLOW_FUNCS").is_some();
    let compiled: Vec<Compiled> = program
        .functions
        .par_iter()
        .enumerate()
        .map_init(Context::new, |ctx, (fi, f)| {
            let started = std::time::Instant::now();
            ctx.clear();
            ctx.func = func::translate(f, fi, ids[fi], &shared)?;
            if dump.contains(&f.entry) {
                eprintln!(
                    "; IR of {:#x}\n{f:#?}\n; state analysis\n{}; Cranelift IR\n{}",
                    f.entry,
                    func::describe_analysis(f),
                    ctx.func.display()
                );
            }
            ctx.compile(&*target_isa, &mut Default::default())
                .map_err(|e| CodegenError::Compile { func: f.entry, what: format!("{:?}", e.inner) })?;
            let code = ctx.compiled_code().ok_or_else(|| CodegenError::Compile {
                func: f.entry,
                what: "no code after compilation".into(),
            })?;
            let buf = &code.buffer;
            if slow_report && started.elapsed().as_millis() > 500 {
                eprintln!("codegen: {:#x}: {} blocks, {} insts in {:.2}s", f.entry, f.blocks.len(),
                    f.blocks.iter().map(|b| b.insts.len()).sum::<usize>(), started.elapsed().as_secs_f64());
            }
            let relocs = buf
                .relocs()
                .iter()
                .map(|r| ModuleReloc::from_mach_reloc(r, &ctx.func, ids[fi]))
                .collect();
            Ok(Compiled {
                id: ids[fi],
                align: u64::from(buf.alignment),
                code: buf.data().to_vec(),
                relocs,
            })
        })
        .collect::<Result<_, CodegenError>>()?;
    for c in compiled {
        module
            .define_function_bytes(c.id, c.align, &c.code, &c.relocs)
            .map_err(module_err)?;
    }

    match unit {
        None => emit::tables(&mut module, &points, guest)?,
        Some(header) => emit::unit_tables(&mut module, header, &points, guest)?,
    }
    let mut product = module.finish();
    emit::meta_section(&mut product.object, &points, guest, isa);
    product.emit().map_err(|e| CodegenError::Object(e.to_string()))
}
