//! Data the runtime and recode read from a translated executable: the dispatch table, the
//! guest facts and the `.hcontainer.meta` section.

use std::collections::BTreeMap;

use cranelift_module::{DataDescription, DataId, FuncId, Linkage, Module};
use cranelift_object::ObjectModule;
use hcontainer_abi::calls::{self, DispatchEntry, GuestInfo};
use hcontainer_abi::meta::{self, Header, HostIsa};
use object::write::Object;
use object::SectionKind;

use crate::{module_err, CodegenError, GuestDescription};

const ENTRY_SIZE: usize = std::mem::size_of::<DispatchEntry>();
const _: () = assert!(ENTRY_SIZE == 24);

fn guest_info_bytes(info: &GuestInfo) -> Vec<u8> {
    // Field order of the #[repr(C)] struct, all u64.
    let fields = [
        info.entry,
        info.phdr,
        info.phnum,
        info.phent,
        info.brk_start,
        info.load_bias,
        info.state_version,
    ];
    debug_assert_eq!(fields.len() * 8, std::mem::size_of::<GuestInfo>());
    fields.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Define `table` as the dispatch table: one entry per point, sorted by guest address, with a
/// relocation to the function of each entry.
fn dispatch_table(
    module: &mut ObjectModule,
    table: DataId,
    points: &BTreeMap<u64, (FuncId, u64)>,
) -> Result<(), CodegenError> {
    let mut bytes = vec![0u8; points.len() * ENTRY_SIZE];
    let mut d = DataDescription::new();
    d.set_align(8);
    let mut refs = std::collections::HashMap::new();
    let mut relocs = Vec::with_capacity(points.len());
    for (i, (&guest_addr, &(func, entry))) in points.iter().enumerate() {
        let at = i * ENTRY_SIZE;
        bytes[at..at + 8].copy_from_slice(&guest_addr.to_le_bytes());
        bytes[at + 16..at + 24].copy_from_slice(&entry.to_le_bytes());
        relocs.push((at + 8, func));
    }
    d.define(bytes.into_boxed_slice());
    for (off, func) in relocs {
        let fref = *refs
            .entry(func)
            .or_insert_with(|| module.declare_func_in_data(func, &mut d));
        let off = u32::try_from(off)
            .map_err(|_| CodegenError::Object(format!("dispatch table offset {off} too large")))?;
        d.write_function_addr(off, fref);
    }
    module.define_data(table, &d).map_err(module_err)
}

/// Define `hc_dispatch_table` (see [`dispatch_table`]), `hc_dispatch_len` and
/// `hc_guest_info` of an executable.
pub(crate) fn tables(
    module: &mut ObjectModule,
    points: &BTreeMap<u64, (FuncId, u64)>,
    guest: &GuestDescription,
) -> Result<(), CodegenError> {
    let table = module
        .declare_data(calls::DISPATCH_TABLE, Linkage::Export, false, false)
        .map_err(module_err)?;
    dispatch_table(module, table, points)?;

    let len = module
        .declare_data(calls::DISPATCH_LEN, Linkage::Export, false, false)
        .map_err(module_err)?;
    let mut d = DataDescription::new();
    d.set_align(8);
    d.define((points.len() as u64).to_le_bytes().to_vec().into_boxed_slice());
    module.define_data(len, &d).map_err(module_err)?;

    let info = module
        .declare_data(calls::GUEST_INFO, Linkage::Export, false, false)
        .map_err(module_err)?;
    let mut d = DataDescription::new();
    d.set_align(8);
    d.define(guest_info_bytes(&guest.info).into_boxed_slice());
    module.define_data(info, &d).map_err(module_err)?;
    Ok(())
}

/// Define a unit's header (`hcontainer_abi::unit::UnitHeader`, writable: the runtime fills
/// in the bias and the imports) and its dispatch table, keyed by link-time guest addresses.
pub(crate) fn unit_tables(
    module: &mut ObjectModule,
    header: DataId,
    points: &BTreeMap<u64, (FuncId, u64)>,
    guest: &GuestDescription,
) -> Result<(), CodegenError> {
    use hcontainer_abi::unit::{self, UnitHeader};
    let table = module.declare_anonymous_data(false, false).map_err(module_err)?;
    dispatch_table(module, table, points)?;

    let h = UnitHeader {
        magic: unit::UNIT_MAGIC,
        version: unit::UNIT_VERSION,
        state_version: u32::from(hcontainer_abi::GUEST_STATE_VERSION),
        bias: 0,
        imports: [0; unit::N_IMPORTS],
        dispatch_table: 0,
        dispatch_len: points.len() as u64,
        guest_sha256: guest.sha256,
        guest_size: guest.file_size,
        n_traps: guest.n_traps,
    };
    let mut bytes = Vec::with_capacity(unit::HEADER_SIZE);
    bytes.extend_from_slice(&h.magic);
    bytes.extend_from_slice(&h.version.to_le_bytes());
    bytes.extend_from_slice(&h.state_version.to_le_bytes());
    bytes.extend_from_slice(&h.bias.to_le_bytes());
    for i in h.imports {
        bytes.extend_from_slice(&i.to_le_bytes());
    }
    bytes.extend_from_slice(&h.dispatch_table.to_le_bytes());
    bytes.extend_from_slice(&h.dispatch_len.to_le_bytes());
    bytes.extend_from_slice(&h.guest_sha256);
    bytes.extend_from_slice(&h.guest_size.to_le_bytes());
    bytes.extend_from_slice(&h.n_traps.to_le_bytes());
    debug_assert_eq!(bytes.len(), unit::HEADER_SIZE);
    let mut d = DataDescription::new();
    d.set_align(16);
    d.define(bytes.into_boxed_slice());
    let tref = module.declare_data_in_data(table, &mut d);
    d.write_data_addr(unit::DISPATCH_TABLE_OFFSET, tref, 0);
    module.define_data(header, &d).map_err(module_err)
}

/// The bytes of the `.hcontainer.meta` section (layout in `hcontainer_abi::meta`).
pub(crate) fn meta_bytes(
    points: &BTreeMap<u64, (FuncId, u64)>,
    guest: &GuestDescription,
    isa: HostIsa,
) -> Vec<u8> {
    let header = Header {
        meta_version: meta::META_VERSION,
        state_version: hcontainer_abi::GUEST_STATE_VERSION,
        host_isa: isa,
        flags: u32::from(guest.is_pie) * meta::FLAG_PIE
            | u32::from(guest.output == crate::Output::Unit) * meta::FLAG_UNIT
            | u32::from(guest.output == crate::Output::Launcher) * meta::FLAG_LAUNCHER
            | u32::from(guest.memory_model == meta::MemoryModel::Tso) * meta::FLAG_TSO,
        guest_entry: guest.info.entry,
        load_bias: guest.info.load_bias,
        guest_sha256: guest.sha256,
        guest_size: guest.file_size,
        n_points: points.len() as u64,
        n_traps: guest.n_traps,
    };
    let mut out = header.encode().to_vec();
    out.reserve(points.len() * 8);
    for addr in points.keys() {
        out.extend_from_slice(&addr.to_le_bytes());
    }
    out
}

/// Add the non-allocated `.hcontainer.meta` section to the object.
pub(crate) fn meta_section(
    obj: &mut Object<'static>,
    points: &BTreeMap<u64, (FuncId, u64)>,
    guest: &GuestDescription,
    isa: HostIsa,
) {
    let id = obj.add_section(Vec::new(), meta::SECTION.as_bytes().to_vec(), SectionKind::Metadata);
    obj.append_section_data(id, &meta_bytes(points, guest, isa), 8);
}
