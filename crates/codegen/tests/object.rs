//! Compiles hand-built IR programs for every host ISA and checks the object file: symbols,
//! dispatch table and its relocations, guest info and the metadata section.

use hcontainer_abi::calls::GuestInfo;
use hcontainer_abi::flags::{CcOp, Cond};
use hcontainer_abi::meta::{Header, HostIsa};
use hcontainer_abi::{offsets, Gpr};
use hcontainer_codegen::{compile, CodegenError, GuestDescription};
use hcontainer_ir::{BinOp, Block, CallTarget, Function, Loc, Op, Program, Terminator, Type, Value};
use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget};

const ISAS: [HostIsa; 3] = [HostIsa::X86_64, HostIsa::Aarch64, HostIsa::Riscv64];

fn gpr(r: Gpr) -> Loc {
    Loc { offset: offsets::gpr(r as u8), ty: Type::I64 }
}

fn c64(b: &mut Block, v: u64) -> Value {
    b.push(Op::Const { ty: Type::I64, bits: u128::from(v) })
}

/// sum = 10 + 9 + … + 1 in a loop, a call to a function that doubles rax, then exit(sum).
fn program() -> Program {
    let mut b0 = Block::new(0x401000);
    let z = c64(&mut b0, 0);
    b0.push(Op::Set(gpr(Gpr::Rax), z));
    let ten = c64(&mut b0, 10);
    b0.push(Op::Set(gpr(Gpr::Rcx), ten));
    b0.term = Terminator::Jump(0x401010);

    let mut b1 = Block::new(0x401010);
    let a = b1.push(Op::Get(gpr(Gpr::Rax)));
    let c = b1.push(Op::Get(gpr(Gpr::Rcx)));
    let s = b1.push(Op::Bin(BinOp::Add, a, c));
    b1.push(Op::Set(gpr(Gpr::Rax), s));
    let one = c64(&mut b1, 1);
    let d = b1.push(Op::Bin(BinOp::Sub, c, one));
    b1.push(Op::Set(gpr(Gpr::Rcx), d));
    let op = c64(&mut b1, CcOp::Sub.with_size(8));
    b1.push(Op::Set(Loc { offset: offsets::CC_OP, ty: Type::I64 }, op));
    b1.push(Op::Set(Loc { offset: offsets::CC_DST, ty: Type::I64 }, d));
    b1.push(Op::Set(Loc { offset: offsets::CC_SRC1, ty: Type::I64 }, c));
    b1.push(Op::Set(Loc { offset: offsets::CC_SRC2, ty: Type::I64 }, one));
    let ne = b1.push(Op::EvalCond(Cond::Ne as u8));
    b1.term = Terminator::Branch { cond: ne, taken: 0x401010, fallthrough: 0x401020 };

    let mut b2 = Block::new(0x401020);
    b2.term = Terminator::Call { target: CallTarget::Direct(0x402000), ret: 0x401030 };

    let mut b3 = Block::new(0x401030);
    let a = b3.push(Op::Get(gpr(Gpr::Rax)));
    let m = c64(&mut b3, 255);
    let r = b3.push(Op::Bin(BinOp::And, a, m));
    b3.push(Op::Set(gpr(Gpr::Rdi), r));
    let n = c64(&mut b3, 60);
    b3.push(Op::Set(gpr(Gpr::Rax), n));
    b3.term = Terminator::Syscall { next: 0x401040 };

    let mut b4 = Block::new(0x401040);
    b4.term = Terminator::Trap { addr: 0x401040, what: "ud2 (0f 0b)".into() };

    let mut f1 = Block::new(0x402000);
    let a = f1.push(Op::Get(gpr(Gpr::Rax)));
    let two = c64(&mut f1, 2);
    let p = f1.push(Op::Bin(BinOp::Mul, a, two));
    f1.push(Op::Set(gpr(Gpr::Rax), p));
    let sp = f1.push(Op::Get(gpr(Gpr::Rsp)));
    let ret = f1.push(Op::Load { ty: Type::I64, addr: sp });
    let eight = c64(&mut f1, 8);
    let sp2 = f1.push(Op::Bin(BinOp::Add, sp, eight));
    f1.push(Op::Set(gpr(Gpr::Rsp), sp2));
    f1.term = Terminator::Return(ret);

    Program {
        functions: vec![
            Function { entry: 0x401000, blocks: vec![b0, b1, b2, b3, b4] },
            Function { entry: 0x402000, blocks: vec![f1] },
        ],
        ..Default::default()
    }
}

fn guest() -> GuestDescription {
    GuestDescription {
        output: hcontainer_codegen::Output::Executable,
        info: GuestInfo {
            entry: 0x401000,
            phdr: 0x400040,
            phnum: 3,
            phent: 56,
            brk_start: 0x403000,
            load_bias: 0,
            state_version: u64::from(hcontainer_abi::GUEST_STATE_VERSION),
        },
        sha256: [0xab; 32],
        file_size: 4321,
        is_pie: false,
        n_traps: 1,
        memory_model: hcontainer_codegen::MemoryModel::Tso,
    }
}

#[test]
fn object_has_functions_tables_and_metadata() {
    for isa in ISAS {
        let bytes = compile(&program(), &guest(), isa).expect("compiles");
        let obj = object::File::parse(&*bytes).expect("valid object");
        let arch = match isa {
            HostIsa::X86_64 => object::Architecture::X86_64,
            HostIsa::Aarch64 => object::Architecture::Aarch64,
            HostIsa::Riscv64 => object::Architecture::Riscv64,
        };
        assert_eq!(obj.architecture(), arch, "{isa:?}");
        let sym = |name: &str| {
            obj.symbols()
                .find(|s| s.name() == Ok(name))
                .unwrap_or_else(|| panic!("{isa:?}: no symbol {name}"))
        };
        for f in ["hc_fn_401000", "hc_fn_402000"] {
            let s = sym(f);
            assert!(s.is_definition() && s.kind() == object::SymbolKind::Text, "{isa:?} {f}");
            assert!(s.size() > 0);
        }
        for f in ["hc_syscall", "hc_unsupported"] {
            assert!(sym(f).is_undefined(), "{isa:?}: {f} must be imported");
        }
        // Five distinct block addresses in the first function, one in the second.
        let table = sym("hc_dispatch_table");
        assert_eq!(table.size(), 6 * 24, "{isa:?}");
        let sec = obj.section_by_index(table.section_index().expect("in a section")).expect("section");
        let data = sec.data().expect("data");
        let base = (table.address() - sec.address()) as usize;
        let word = |i: usize| u64::from_le_bytes(data[base + 8 * i..base + 8 * i + 8].try_into().expect("8 bytes"));
        let guests: Vec<u64> = (0..6).map(|i| word(3 * i)).collect();
        assert_eq!(guests, [0x401000, 0x401010, 0x401020, 0x401030, 0x401040, 0x402000]);
        let entries: Vec<u64> = (0..6).map(|i| word(3 * i + 2)).collect();
        assert_eq!(entries, [0, 1, 2, 3, 4, 0]);
        // Each `func` field carries a relocation to the right function.
        let mut relocated = Vec::new();
        for (off, r) in sec.relocations() {
            if off >= table.address() && off < table.address() + table.size() {
                let idx = (off - table.address()) as usize;
                assert_eq!(idx % 24, 8, "{isa:?}: relocation not on a func field");
                let RelocationTarget::Symbol(si) = r.target() else { panic!("not a symbol reloc") };
                let name = obj.symbol_by_index(si).expect("symbol").name().expect("name").to_string();
                relocated.push((idx / 24, name));
            }
        }
        relocated.sort();
        let want: Vec<(usize, String)> = (0..6)
            .map(|i| (i, if i < 5 { "hc_fn_401000" } else { "hc_fn_402000" }.to_string()))
            .collect();
        assert_eq!(relocated, want, "{isa:?}");

        let meta = obj.section_by_name(".hcontainer.meta").expect("meta section");
        let object::SectionFlags::Elf { sh_flags } = meta.flags() else { panic!("not ELF") };
        assert_eq!(sh_flags & u64::from(object::elf::SHF_ALLOC), 0, "meta must not be allocated");
        let (h, points) = Header::decode(meta.data().expect("data")).expect("valid metadata");
        assert_eq!(h.host_isa, isa);
        assert_eq!((h.guest_entry, h.guest_size, h.n_traps, h.flags), (0x401000, 4321, 1, hcontainer_abi::meta::FLAG_TSO));
        assert_eq!(h.guest_sha256, [0xab; 32]);
        let pts: Vec<u64> = points.chunks(8).map(|c| u64::from_le_bytes(c.try_into().expect("8"))).collect();
        assert_eq!(pts, guests);

        let info = sym("hc_guest_info");
        assert_eq!(info.size(), 56);
    }
}

#[test]
fn mixed_location_types_are_rejected() {
    let mut p = program();
    let b = &mut p.functions[1].blocks[0];
    b.push(Op::Get(Loc { offset: offsets::gpr(Gpr::Rax as u8), ty: Type::I32 }));
    match compile(&p, &guest(), HostIsa::X86_64) {
        Err(CodegenError::MixedLocation { func: 0x402000, offset: 0, .. }) => {}
        other => panic!("expected a mixed-location error, got {other:?}"),
    }
}

#[test]
fn undefined_value_is_an_error() {
    let mut p = program();
    p.functions[1].blocks[0].term = Terminator::Return(Value(999));
    match compile(&p, &guest(), HostIsa::Aarch64) {
        Err(CodegenError::BadIr { func: 0x402000, block: 0x402000, .. }) => {}
        other => panic!("expected a bad-IR error, got {other:?}"),
    }
}
