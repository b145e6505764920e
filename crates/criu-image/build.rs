//! Compiles `proto/criu.proto` into prost structs with protox (no system `protoc`).

/// Fields shown in hex, as CRIU's `crit` shows them: `(message, field)`; field `*` = all.
const HEX_FIELDS: &[(&str, &str)] = &[
    ("TaskCoreEntry", "blk_sigset"),
    ("TaskCoreEntry", "blk_sigset_extended"),
    ("TaskCoreEntry", "membarrier_registration_mask"),
    ("ThreadInfoX86", "clear_tid_addr"),
    ("UserX86RegsEntry", "*"),
    ("UserX86CetEntry", "*"),
    ("ThreadInfoAarch64", "clear_tid_addr"),
    ("UserAarch64RegsEntry", "*"),
    ("ThreadInfoRiscv64", "clear_tid_addr"),
    ("UserRiscv64RegsEntry", "*"),
    ("MmEntry", "mm_start_code"),
    ("MmEntry", "mm_end_code"),
    ("MmEntry", "mm_start_data"),
    ("MmEntry", "mm_end_data"),
    ("MmEntry", "mm_start_stack"),
    ("MmEntry", "mm_start_brk"),
    ("MmEntry", "mm_brk"),
    ("MmEntry", "mm_arg_start"),
    ("MmEntry", "mm_arg_end"),
    ("MmEntry", "mm_env_start"),
    ("MmEntry", "mm_env_end"),
    ("VmaEntry", "start"),
    ("VmaEntry", "end"),
    ("VmaEntry", "madv"),
    ("VmaEntry", "fdflags"),
    ("PagemapEntry", "vaddr"),
    ("PipeEntry", "flags"),
    ("InetSkEntry", "flags"),
    ("UnixSkEntry", "flags"),
    ("UnixSkEntry", "uflags"),
    ("SignalfdEntry", "flags"),
    ("SignalfdEntry", "sigmask"),
    ("TimerfdEntry", "flags"),
    ("TimerfdEntry", "settime_flags"),
    ("TtyFileEntry", "flags"),
    ("TcpStreamEntry", "opt_mask"),
    ("SaEntry", "sigaction"),
    ("SaEntry", "flags"),
    ("SaEntry", "restorer"),
    ("SaEntry", "mask"),
    ("SaEntry", "mask_extended"),
];

/// `bytes` fields, shown as hex strings.
const BYTES_FIELDS: &[(&str, &str)] = &[
    ("SiginfoEntry", "siginfo"),
    ("UnixSkEntry", "name"),
    ("TtyDataEntry", "data"),
    ("CredsEntry", "apparmor_data"),
    ("SeccompFilter", "filter"),
];

/// Messages whose every field is hex (`*` above) need the field list to attach attributes.
const ALL_FIELDS: &[(&str, &[&str])] = &[
    (
        "UserX86RegsEntry",
        &[
            "r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx",
            "si", "di", "orig_ax", "ip", "cs", "flags", "sp", "ss", "fs_base", "gs_base", "ds",
            "es", "fs", "gs",
        ],
    ),
    ("UserX86CetEntry", &["cet", "ssp"]),
    ("UserAarch64RegsEntry", &["regs", "sp", "pc", "pstate"]),
    (
        "UserRiscv64RegsEntry",
        &[
            "pc", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3",
            "a4", "a5", "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11",
            "t3", "t4", "t5", "t6",
        ],
    ),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/criu.proto");
    let fds = protox::compile(["proto/criu.proto"], ["proto"])?;
    let mut config = prost_build::Config::new();
    config.type_attribute(".criu", "#[derive(serde::Serialize)]");
    for (msg, field) in HEX_FIELDS {
        let fields: Vec<&str> = if *field == "*" {
            ALL_FIELDS
                .iter()
                .find(|(m, _)| m == msg)
                .map(|(_, f)| f.to_vec())
                .ok_or("hex message without a field list")?
        } else {
            vec![field]
        };
        for f in fields {
            config.field_attribute(
                format!(".criu.{msg}.{f}"),
                "#[serde(serialize_with = \"crate::show::hex\")]",
            );
        }
    }
    for (msg, field) in BYTES_FIELDS {
        config.field_attribute(
            format!(".criu.{msg}.{field}"),
            "#[serde(serialize_with = \"crate::show::bytes\")]",
        );
    }
    config.compile_fds(fds)?;
    Ok(())
}
