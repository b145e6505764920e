//! What differs per host ISA when linking: lld emulation, ELF machine and flags.

use hcontainer_abi::meta::HostIsa;

/// Linking facts of one host ISA.
pub(crate) struct LinkTarget {
    /// `-m` emulation for lld.
    pub emulation: &'static str,
    /// Architecture of objects we write.
    pub arch: object::Architecture,
    /// ELF `e_flags` our objects carry (lld refuses to mix riscv float ABIs).
    pub e_flags: u32,
}

pub(crate) fn link_target(isa: HostIsa) -> LinkTarget {
    match isa {
        HostIsa::X86_64 => LinkTarget { emulation: "elf_x86_64", arch: object::Architecture::X86_64, e_flags: 0 },
        HostIsa::Aarch64 => LinkTarget { emulation: "aarch64elf", arch: object::Architecture::Aarch64, e_flags: 0 },
        HostIsa::Riscv64 => LinkTarget {
            emulation: "elf64lriscv",
            arch: object::Architecture::Riscv64,
            e_flags: object::elf::EF_RISCV_FLOAT_ABI_DOUBLE | object::elf::EF_RISCV_RVC,
        },
    }
}
