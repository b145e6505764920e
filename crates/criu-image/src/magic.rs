//! CRIU's image magics and what each image file holds.

/// First word of every image but the inventory and service images.
pub const IMG_COMMON_MAGIC: u32 = 0x5456_4319;
/// First word of service images (stats, irmap cache).
pub const IMG_SERVICE_MAGIC: u32 = 0x5510_5940;
/// The inventory's only header word.
pub const INVENTORY_MAGIC: u32 = 0x5831_3116;

/// What follows an entry's message in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extra {
    /// Nothing.
    None,
    /// `PipeDataEntry.bytes` bytes.
    PipeData,
    /// `SkPacketEntry.length` bytes.
    SkQueue,
    /// `TcpStreamEntry.inq_len + outq_len` bytes.
    TcpStream,
    /// The format is not handled entry by entry: the whole file is kept as raw bytes.
    Opaque,
}

/// The known kinds of protobuf image, by type magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageKind {
    /// crit's name of the magic, e.g. `CORE`.
    pub name: &'static str,
    /// The type magic.
    pub magic: u32,
    /// Payload after each entry.
    pub extra: Extra,
}

const fn k(name: &'static str, magic: u32) -> ImageKind {
    ImageKind { name, magic, extra: Extra::None }
}
const fn kx(name: &'static str, magic: u32, extra: Extra) -> ImageKind {
    ImageKind { name, magic, extra }
}

/// Every type magic CRIU 4 writes.
pub const KINDS: &[ImageKind] = &[
    k("INVENTORY", INVENTORY_MAGIC),
    k("PSTREE", 0x5027_3030),
    k("FDINFO", 0x5621_3732),
    k("PAGEMAP", 0x5608_4025),
    k("CORE", 0x5505_3847),
    k("IDS", 0x5443_2030),
    k("VMAS", 0x5412_3737),
    k("PIPES", 0x5651_3555),
    kx("PIPES_DATA", 0x5645_3709, Extra::PipeData),
    k("FIFO", 0x5836_4939),
    kx("FIFO_DATA", 0x5933_3054, Extra::PipeData),
    k("SIGACT", 0x5534_4201),
    k("UNIXSK", 0x5437_3943),
    k("INETSK", 0x5644_3851),
    k("PACKETSK", 0x6045_4618),
    k("ITIMERS", 0x5746_4056),
    k("POSIX_TIMERS", 0x5260_3957),
    kx("SK_QUEUES", 0x5626_4026, Extra::SkQueue),
    k("UTSNS", 0x5447_3203),
    k("CREDS", 0x5402_3547),
    k("IPC_VAR", 0x5311_5007),
    kx("IPCNS_SHM", 0x4628_3044, Extra::Opaque),
    kx("IPCNS_MSG", 0x5545_3737, Extra::Opaque),
    kx("IPCNS_SEM", 0x5957_3019, Extra::Opaque),
    k("REG_FILES", 0x5036_3636),
    k("EXT_FILES", 0x5925_5641),
    k("FS", 0x5140_3912),
    k("MM", 0x5749_2820),
    k("REMAP_FPATH", 0x5913_3954),
    kx("GHOST_FILE", 0x5258_3605, Extra::Opaque),
    kx("TCP_STREAM", 0x5146_5506, Extra::TcpStream),
    k("EVENTFD_FILE", 0x4452_3722),
    k("EVENTPOLL_FILE", 0x4502_3858),
    k("EVENTPOLL_TFD", 0x4443_3746),
    k("SIGNALFD", 0x5732_3820),
    k("INOTIFY_FILE", 0x4842_4431),
    k("INOTIFY_WD", 0x5456_2009),
    k("MNTS", 0x5556_3928),
    k("NETDEV", 0x5737_3951),
    k("NETNS", 0x5593_3752),
    k("TTY_FILES", 0x5943_3025),
    k("TTY_INFO", 0x5945_3036),
    k("TTY_DATA", 0x5941_3026),
    k("FILE_LOCKS", 0x5432_3616),
    k("RLIMIT", 0x5711_3925),
    k("FANOTIFY_FILE", 0x5509_6122),
    k("FANOTIFY_MARK", 0x5650_6035),
    k("SIGNAL", 0x5925_5647),
    k("NETLINK_SK", 0x5800_5614),
    k("NS_FILES", 0x6139_4011),
    k("TUNFILE", 0x5714_3751),
    k("CGROUP", 0x5938_3330),
    k("TIMERFD", 0x5049_3712),
    k("CPUINFO", 0x6140_4013),
    k("USERNS", 0x5547_4906),
    k("SECCOMP", 0x6441_3049),
    k("BINFMT_MISC", 0x6734_3323),
    k("AUTOFS", 0x4935_3943),
    k("FILES", 0x5630_3138),
    k("MEMFD_INODE", 0x4845_3499),
    k("TIMENS", 0x4311_4433),
    k("PIDNS", 0x6115_7326),
    k("BPFMAP_FILE", 0x5750_6142),
    kx("BPFMAP_DATA", 0x6432_4033, Extra::Opaque),
    k("APPARMOR", 0x5942_3047),
    k("PIDFD", 0x5443_5556),
    k("STATS", 0x5709_3306),
    k("IRMAP_CACHE", 0x5700_4059),
];

/// Looks a type magic up.
pub fn kind_of(magic: u32) -> Option<&'static ImageKind> {
    KINDS.iter().find(|k| k.magic == magic)
}

/// The kind a file name implies, for files whose name CRIU fixes (`core-12.img` → `CORE`).
/// `None` for raw images and names hcontainer does not know.
pub fn kind_for_name(name: &str) -> Option<&'static ImageKind> {
    // Service images have no suffix (`stats-dump`).
    let stem = name.strip_suffix(".img").unwrap_or(name);
    if let Some(kind) = kind_for_stem(stem) {
        return Some(kind);
    }
    // `core-12`, `tcp-stream-2f1a`: cut the id.
    let (base, id) = stem.rsplit_once('-')?;
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    kind_for_stem(base)
}

fn kind_for_stem(base: &str) -> Option<&'static ImageKind> {
    let name = match base {
        "inventory" => "INVENTORY",
        "pstree" => "PSTREE",
        "core" => "CORE",
        "mm" => "MM",
        "pagemap" => "PAGEMAP",
        "fdinfo" => "FDINFO",
        "files" => "FILES",
        "fs" => "FS",
        "ids" => "IDS",
        "seccomp" => "SECCOMP",
        "timens" => "TIMENS",
        "tty-info" => "TTY_INFO",
        "tty-data" => "TTY_DATA",
        "cgroup" => "CGROUP",
        "tcp-stream" => "TCP_STREAM",
        "pipes-data" => "PIPES_DATA",
        "fifo-data" => "FIFO_DATA",
        "sk-queues" => "SK_QUEUES",
        "stats-dump" | "stats-restore" => "STATS",
        "mountpoints" => "MNTS",
        "netns" => "NETNS",
        "utsns" => "UTSNS",
        "ipcns-var" => "IPC_VAR",
        "eventfd" => "EVENTFD_FILE",
        _ => return None,
    };
    KINDS.iter().find(|k| k.name == name)
}

/// Whether CRIU writes this file without any header (page contents and network dumps).
pub fn is_raw_name(name: &str) -> bool {
    const RAW: &[&str] = &[
        "pages-", "ifaddr-", "route-", "route6-", "rule-", "tmpfs-", "iptables-", "ip6tables-",
        "nftables-", "netns-ct-", "netns-exp-",
    ];
    RAW.iter().any(|p| name.starts_with(p))
}
