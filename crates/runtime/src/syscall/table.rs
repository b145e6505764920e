//! The x86-64 Linux system call table: number → name, argument kinds, the asm-generic
//! number (arm64 and riscv64 hosts) and how the runtime handles it. The one definition every
//! other part of the syscall layer uses.

/// Kind of one argument (for diagnostics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// Integer or flags.
    I,
    /// File descriptor.
    F,
    /// Pointer to guest memory.
    P,
    /// Pointer to a NUL-terminated path or name.
    S,
}

/// How the runtime handles a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// Same arguments and structures on every host: forwarded with the host's number
    /// (the x86-64 number on an x86-64 host, [`Sys::generic`] elsewhere; absent there →
    /// `-ENOSYS`).
    Pass,
    /// Same on an x86-64 host (forwarded); translated to other calls or structures on
    /// asm-generic hosts.
    Compat,
    /// Emulated by the runtime on every host (guest state, memory layout, threads).
    Emulate,
    /// Not offered: `-ENOSYS`.
    Nosys,
}

/// One system call.
#[derive(Clone, Copy, Debug)]
pub struct Sys {
    /// Linux name.
    pub name: &'static str,
    /// Argument kinds.
    pub args: &'static [Arg],
    /// asm-generic number (arm64, riscv64), or [`NONE`].
    pub generic: u16,
    /// Handling.
    pub how: How,
}

/// No asm-generic equivalent.
pub const NONE: u16 = u16::MAX;
/// Number of slots in [`TABLE`] (highest x86-64 number + 1).
pub const LEN: usize = 463;

const EMPTY: Sys = Sys { name: "", args: &[], generic: NONE, how: How::Nosys };

use Arg::{F, I, P, S};
use How::{Compat, Emulate, Nosys, Pass};

macro_rules! table {
    ($($nr:literal $name:ident $how:ident $generic:tt [$($arg:ident),*];)*) => {
        const ENTRIES: &[(usize, Sys)] = &[
            $(($nr, Sys {
                name: stringify!($name),
                args: &[$($arg),*],
                generic: table!(@g $generic),
                how: $how,
            }),)*
        ];
    };
    (@g -) => { NONE };
    (@g $n:literal) => { $n };
}

table! {
    0 read Pass 63 [F, P, I];
    1 write Pass 64 [F, P, I];
    2 open Compat - [S, I, I];
    3 close Pass 57 [F];
    4 stat Compat - [S, P];
    5 fstat Compat 80 [F, P];
    6 lstat Compat - [S, P];
    7 poll Compat - [P, I, I];
    8 lseek Pass 62 [F, I, I];
    9 mmap Emulate 222 [P, I, I, I, F, I];
    10 mprotect Emulate 226 [P, I, I];
    11 munmap Emulate 215 [P, I];
    12 brk Emulate - [P];
    13 rt_sigaction Emulate 134 [I, P, P, I];
    14 rt_sigprocmask Emulate 135 [I, P, P, I];
    15 rt_sigreturn Emulate 139 [];
    16 ioctl Pass 29 [F, I, P];
    17 pread64 Pass 67 [F, P, I, I];
    18 pwrite64 Pass 68 [F, P, I, I];
    19 readv Pass 65 [F, P, I];
    20 writev Pass 66 [F, P, I];
    21 access Compat - [S, I];
    22 pipe Compat - [P];
    23 select Compat - [I, P, P, P, P];
    24 sched_yield Pass 124 [];
    25 mremap Emulate 216 [P, I, I, I, P];
    26 msync Pass 227 [P, I, I];
    27 mincore Pass 232 [P, I, P];
    28 madvise Emulate 233 [P, I, I];
    29 shmget Pass 194 [I, I, I];
    30 shmat Pass 196 [I, P, I];
    31 shmctl Pass 195 [I, I, P];
    32 dup Pass 23 [F];
    33 dup2 Compat - [F, F];
    34 pause Compat - [];
    35 nanosleep Pass 101 [P, P];
    36 getitimer Pass 102 [I, P];
    37 alarm Compat - [I];
    38 setitimer Pass 103 [I, P, P];
    39 getpid Pass 172 [];
    40 sendfile Pass 71 [F, F, P, I];
    41 socket Pass 198 [I, I, I];
    42 connect Pass 203 [F, P, I];
    43 accept Pass 202 [F, P, P];
    44 sendto Pass 206 [F, P, I, I, P, I];
    45 recvfrom Pass 207 [F, P, I, I, P, P];
    46 sendmsg Pass 211 [F, P, I];
    47 recvmsg Pass 212 [F, P, I];
    48 shutdown Pass 210 [F, I];
    49 bind Pass 200 [F, P, I];
    50 listen Pass 201 [F, I];
    51 getsockname Pass 204 [F, P, P];
    52 getpeername Pass 205 [F, P, P];
    53 socketpair Pass 199 [I, I, I, P];
    54 setsockopt Pass 208 [F, I, I, P, I];
    55 getsockopt Pass 209 [F, I, I, P, P];
    56 clone Emulate 220 [I, P, P, P, I];
    57 fork Emulate - [];
    58 vfork Emulate - [];
    59 execve Pass 221 [S, P, P];
    60 exit Emulate 93 [I];
    61 wait4 Pass 260 [I, P, I, P];
    62 kill Pass 129 [I, I];
    63 uname Compat 160 [P];
    64 semget Pass 190 [I, I, I];
    65 semop Pass 193 [I, P, I];
    66 semctl Pass 191 [I, I, I, I];
    67 shmdt Pass 197 [P];
    68 msgget Pass 186 [I, I];
    69 msgsnd Pass 189 [I, P, I, I];
    70 msgrcv Pass 188 [I, P, I, I, I];
    71 msgctl Pass 187 [I, I, P];
    72 fcntl Compat 25 [F, I, I];
    73 flock Pass 32 [F, I];
    74 fsync Pass 82 [F];
    75 fdatasync Pass 83 [F];
    76 truncate Pass 45 [S, I];
    77 ftruncate Pass 46 [F, I];
    78 getdents Compat - [F, P, I];
    79 getcwd Pass 17 [P, I];
    80 chdir Pass 49 [S];
    81 fchdir Pass 50 [F];
    82 rename Compat - [S, S];
    83 mkdir Compat - [S, I];
    84 rmdir Compat - [S];
    85 creat Compat - [S, I];
    86 link Compat - [S, S];
    87 unlink Compat - [S];
    88 symlink Compat - [S, S];
    89 readlink Compat - [S, P, I];
    90 chmod Compat - [S, I];
    91 fchmod Pass 52 [F, I];
    92 chown Compat - [S, I, I];
    93 fchown Pass 55 [F, I, I];
    94 lchown Compat - [S, I, I];
    95 umask Pass 166 [I];
    96 gettimeofday Compat - [P, P];
    97 getrlimit Pass 163 [I, P];
    98 getrusage Pass 165 [I, P];
    99 sysinfo Pass 179 [P];
    100 times Pass 153 [P];
    101 ptrace Nosys 117 [I, I, P, P];
    102 getuid Pass 174 [];
    103 syslog Pass 116 [I, P, I];
    104 getgid Pass 176 [];
    105 setuid Pass 146 [I];
    106 setgid Pass 144 [I];
    107 geteuid Pass 175 [];
    108 getegid Pass 177 [];
    109 setpgid Pass 154 [I, I];
    110 getppid Pass 173 [];
    111 getpgrp Compat - [];
    112 setsid Pass 157 [];
    113 setreuid Pass 145 [I, I];
    114 setregid Pass 143 [I, I];
    115 getgroups Pass 158 [I, P];
    116 setgroups Pass 159 [I, P];
    117 setresuid Pass 147 [I, I, I];
    118 getresuid Pass 148 [P, P, P];
    119 setresgid Pass 149 [I, I, I];
    120 getresgid Pass 150 [P, P, P];
    121 getpgid Pass 155 [I];
    122 setfsuid Pass 151 [I];
    123 setfsgid Pass 152 [I];
    124 getsid Pass 156 [I];
    125 capget Pass 90 [P, P];
    126 capset Pass 91 [P, P];
    127 rt_sigpending Pass 136 [P, I];
    128 rt_sigtimedwait Pass 137 [P, P, P, I];
    129 rt_sigqueueinfo Pass 138 [I, I, P];
    130 rt_sigsuspend Pass 133 [P, I];
    131 sigaltstack Emulate 132 [P, P];
    132 utime Compat - [S, P];
    133 mknod Compat - [S, I, I];
    134 uselib Nosys - [S];
    135 personality Pass 92 [I];
    136 ustat Nosys - [I, P];
    137 statfs Pass 43 [S, P];
    138 fstatfs Pass 44 [F, P];
    139 sysfs Nosys - [I, I, I];
    140 getpriority Pass 141 [I, I];
    141 setpriority Pass 140 [I, I, I];
    142 sched_setparam Pass 118 [I, P];
    143 sched_getparam Pass 121 [I, P];
    144 sched_setscheduler Pass 119 [I, I, P];
    145 sched_getscheduler Pass 120 [I];
    146 sched_get_priority_max Pass 125 [I];
    147 sched_get_priority_min Pass 126 [I];
    148 sched_rr_get_interval Pass 127 [I, P];
    149 mlock Pass 228 [P, I];
    150 munlock Pass 229 [P, I];
    151 mlockall Pass 230 [I];
    152 munlockall Pass 231 [];
    153 vhangup Pass 58 [];
    154 modify_ldt Nosys - [I, P, I];
    155 pivot_root Pass 41 [S, S];
    156 _sysctl Nosys - [P];
    157 prctl Emulate 167 [I, I, I, I, I];
    158 arch_prctl Emulate - [I, P];
    159 adjtimex Pass 171 [P];
    160 setrlimit Pass 164 [I, P];
    161 chroot Pass 51 [S];
    162 sync Pass 81 [];
    163 acct Pass 89 [S];
    164 settimeofday Pass 170 [P, P];
    165 mount Pass 40 [S, S, S, I, P];
    166 umount2 Pass 39 [S, I];
    167 swapon Pass 224 [S, I];
    168 swapoff Pass 225 [S];
    169 reboot Pass 142 [I, I, I, P];
    170 sethostname Pass 161 [S, I];
    171 setdomainname Pass 162 [S, I];
    172 iopl Nosys - [I];
    173 ioperm Nosys - [I, I, I];
    174 create_module Nosys - [];
    175 init_module Pass 105 [P, I, S];
    176 delete_module Pass 106 [S, I];
    177 get_kernel_syms Nosys - [];
    178 query_module Nosys - [];
    179 quotactl Pass 60 [I, S, I, P];
    180 nfsservctl Nosys - [];
    181 getpmsg Nosys - [];
    182 putpmsg Nosys - [];
    183 afs_syscall Nosys - [];
    184 tuxcall Nosys - [];
    185 security Nosys - [];
    186 gettid Pass 178 [];
    187 readahead Pass 213 [F, I, I];
    188 setxattr Pass 5 [S, S, P, I, I];
    189 lsetxattr Pass 6 [S, S, P, I, I];
    190 fsetxattr Pass 7 [F, S, P, I, I];
    191 getxattr Pass 8 [S, S, P, I];
    192 lgetxattr Pass 9 [S, S, P, I];
    193 fgetxattr Pass 10 [F, S, P, I];
    194 listxattr Pass 11 [S, P, I];
    195 llistxattr Pass 12 [S, P, I];
    196 flistxattr Pass 13 [F, P, I];
    197 removexattr Pass 14 [S, S];
    198 lremovexattr Pass 15 [S, S];
    199 fremovexattr Pass 16 [F, S];
    200 tkill Pass 130 [I, I];
    201 time Compat - [P];
    202 futex Pass 98 [P, I, I, P, P, I];
    203 sched_setaffinity Pass 122 [I, I, P];
    204 sched_getaffinity Pass 123 [I, I, P];
    205 set_thread_area Nosys - [P];
    206 io_setup Pass 0 [I, P];
    207 io_destroy Pass 1 [I];
    208 io_getevents Pass 4 [I, I, I, P, P];
    209 io_submit Pass 2 [I, I, P];
    210 io_cancel Pass 3 [I, P, P];
    211 get_thread_area Nosys - [P];
    212 lookup_dcookie Pass 18 [I, P, I];
    213 epoll_create Compat - [I];
    214 epoll_ctl_old Nosys - [];
    215 epoll_wait_old Nosys - [];
    216 remap_file_pages Pass 234 [P, I, I, I, I];
    217 getdents64 Pass 61 [F, P, I];
    218 set_tid_address Pass 96 [P];
    219 restart_syscall Pass 128 [];
    220 semtimedop Pass 192 [I, P, I, P];
    221 fadvise64 Pass 223 [F, I, I, I];
    222 timer_create Pass 107 [I, P, P];
    223 timer_settime Pass 110 [I, I, P, P];
    224 timer_gettime Pass 108 [I, P];
    225 timer_getoverrun Pass 109 [I];
    226 timer_delete Pass 111 [I];
    227 clock_settime Pass 112 [I, P];
    228 clock_gettime Pass 113 [I, P];
    229 clock_getres Pass 114 [I, P];
    230 clock_nanosleep Pass 115 [I, I, P, P];
    231 exit_group Pass 94 [I];
    232 epoll_wait Compat - [F, P, I, I];
    233 epoll_ctl Compat 21 [F, I, F, P];
    234 tgkill Pass 131 [I, I, I];
    235 utimes Compat - [S, P];
    236 vserver Nosys - [];
    237 mbind Pass 235 [P, I, I, P, I, I];
    238 set_mempolicy Pass 237 [I, P, I];
    239 get_mempolicy Pass 236 [P, P, I, P, I];
    240 mq_open Pass 180 [S, I, I, P];
    241 mq_unlink Pass 181 [S];
    242 mq_timedsend Pass 182 [I, P, I, I, P];
    243 mq_timedreceive Pass 183 [I, P, I, P, P];
    244 mq_notify Pass 184 [I, P];
    245 mq_getsetattr Pass 185 [I, P, P];
    246 kexec_load Pass 104 [I, I, P, I];
    247 waitid Pass 95 [I, I, P, I, P];
    248 add_key Pass 217 [S, S, P, I, I];
    249 request_key Pass 218 [S, S, S, I];
    250 keyctl Pass 219 [I, I, I, I, I];
    251 ioprio_set Pass 30 [I, I, I];
    252 ioprio_get Pass 31 [I, I];
    253 inotify_init Compat - [];
    254 inotify_add_watch Pass 27 [F, S, I];
    255 inotify_rm_watch Pass 28 [F, I];
    256 migrate_pages Pass 238 [I, I, P, P];
    257 openat Compat 56 [F, S, I, I];
    258 mkdirat Pass 34 [F, S, I];
    259 mknodat Pass 33 [F, S, I, I];
    260 fchownat Pass 54 [F, S, I, I, I];
    261 futimesat Compat - [F, S, P];
    262 newfstatat Compat 79 [F, S, P, I];
    263 unlinkat Pass 35 [F, S, I];
    264 renameat Compat - [F, S, F, S];
    265 linkat Pass 37 [F, S, F, S, I];
    266 symlinkat Pass 36 [S, F, S];
    267 readlinkat Pass 78 [F, S, P, I];
    268 fchmodat Pass 53 [F, S, I];
    269 faccessat Pass 48 [F, S, I];
    270 pselect6 Pass 72 [I, P, P, P, P, P];
    271 ppoll Pass 73 [P, I, P, P, I];
    272 unshare Pass 97 [I];
    273 set_robust_list Pass 99 [P, I];
    274 get_robust_list Pass 100 [I, P, P];
    275 splice Pass 76 [F, P, F, P, I, I];
    276 tee Pass 77 [F, F, I, I];
    277 sync_file_range Pass 84 [F, I, I, I];
    278 vmsplice Pass 75 [F, P, I, I];
    279 move_pages Pass 239 [I, I, P, P, P, I];
    280 utimensat Pass 88 [F, S, P, I];
    281 epoll_pwait Compat 22 [F, P, I, I, P, I];
    282 signalfd Compat - [F, P, I];
    283 timerfd_create Pass 85 [I, I];
    284 eventfd Compat - [I];
    285 fallocate Pass 47 [F, I, I, I];
    286 timerfd_settime Pass 86 [F, I, P, P];
    287 timerfd_gettime Pass 87 [F, P];
    288 accept4 Pass 242 [F, P, P, I];
    289 signalfd4 Pass 74 [F, P, I, I];
    290 eventfd2 Pass 19 [I, I];
    291 epoll_create1 Pass 20 [I];
    292 dup3 Pass 24 [F, F, I];
    293 pipe2 Compat 59 [P, I];
    294 inotify_init1 Pass 26 [I];
    295 preadv Pass 69 [F, P, I, I, I];
    296 pwritev Pass 70 [F, P, I, I, I];
    297 rt_tgsigqueueinfo Pass 240 [I, I, I, P];
    298 perf_event_open Pass 241 [P, I, I, F, I];
    299 recvmmsg Pass 243 [F, P, I, I, P];
    300 fanotify_init Pass 262 [I, I];
    301 fanotify_mark Pass 263 [F, I, I, F, S];
    302 prlimit64 Pass 261 [I, I, P, P];
    303 name_to_handle_at Pass 264 [F, S, P, P, I];
    304 open_by_handle_at Pass 265 [F, P, I];
    305 clock_adjtime Pass 266 [I, P];
    306 syncfs Pass 267 [F];
    307 sendmmsg Pass 269 [F, P, I, I];
    308 setns Pass 268 [F, I];
    309 getcpu Pass 168 [P, P, P];
    310 process_vm_readv Pass 270 [I, P, I, P, I, I];
    311 process_vm_writev Pass 271 [I, P, I, P, I, I];
    312 kcmp Pass 272 [I, I, I, I, I];
    313 finit_module Pass 273 [F, S, I];
    314 sched_setattr Pass 274 [I, P, I];
    315 sched_getattr Pass 275 [I, P, I, I];
    316 renameat2 Pass 276 [F, S, F, S, I];
    317 seccomp Nosys 277 [I, I, P];
    318 getrandom Pass 278 [P, I, I];
    319 memfd_create Pass 279 [S, I];
    320 kexec_file_load Pass 294 [F, F, I, S, I];
    321 bpf Pass 280 [I, P, I];
    322 execveat Pass 281 [F, S, P, P, I];
    323 userfaultfd Pass 282 [I];
    324 membarrier Pass 283 [I, I, I];
    325 mlock2 Pass 284 [P, I, I];
    326 copy_file_range Pass 285 [F, P, F, P, I, I];
    327 preadv2 Pass 286 [F, P, I, I, I, I];
    328 pwritev2 Pass 287 [F, P, I, I, I, I];
    329 pkey_mprotect Emulate 288 [P, I, I, I];
    330 pkey_alloc Pass 289 [I, I];
    331 pkey_free Pass 290 [I];
    332 statx Pass 291 [F, S, I, I, P];
    333 io_pgetevents Pass 292 [I, I, I, P, P, P];
    334 rseq Emulate 293 [P, I, I, I];
    424 pidfd_send_signal Pass 424 [F, I, P, I];
    425 io_uring_setup Pass 425 [I, P];
    426 io_uring_enter Pass 426 [F, I, I, I, P, I];
    427 io_uring_register Pass 427 [F, I, P, I];
    428 open_tree Pass 428 [F, S, I];
    429 move_mount Pass 429 [F, S, F, S, I];
    430 fsopen Pass 430 [S, I];
    431 fsconfig Pass 431 [F, I, S, P, I];
    432 fsmount Pass 432 [F, I, I];
    433 fspick Pass 433 [F, S, I];
    434 pidfd_open Pass 434 [I, I];
    435 clone3 Emulate 435 [P, I];
    436 close_range Pass 436 [F, F, I];
    437 openat2 Pass 437 [F, S, P, I];
    438 pidfd_getfd Pass 438 [F, F, I];
    439 faccessat2 Pass 439 [F, S, I, I];
    440 process_madvise Pass 440 [F, P, I, I, I];
    441 epoll_pwait2 Compat 441 [F, P, I, P, P, I];
    442 mount_setattr Pass 442 [F, S, I, P, I];
    443 quotactl_fd Pass 443 [F, I, I, P];
    444 landlock_create_ruleset Pass 444 [P, I, I];
    445 landlock_add_rule Pass 445 [F, I, P, I];
    446 landlock_restrict_self Pass 446 [F, I];
    447 memfd_secret Pass 447 [I];
    448 process_mrelease Pass 448 [F, I];
    449 futex_waitv Pass 449 [P, I, I, P, I];
    450 set_mempolicy_home_node Pass 450 [P, I, I, I];
    451 cachestat Pass 451 [F, P, P, I];
    452 fchmodat2 Pass 452 [F, S, I, I];
    453 map_shadow_stack Nosys 453 [P, I, I];
    454 futex_wake Pass 454 [P, I, I, I];
    455 futex_wait Pass 455 [P, I, I, I, P, I];
    456 futex_requeue Pass 456 [P, I, I, I];
    457 statmount Pass 457 [P, P, I, I];
    458 listmount Pass 458 [P, P, I, I];
    459 lsm_get_self_attr Pass 459 [I, P, P, I];
    460 lsm_set_self_attr Pass 460 [I, P, I, I];
    461 lsm_list_modules Pass 461 [P, P, I];
    462 mseal Emulate 462 [P, I, I];
}

const fn build() -> [Sys; LEN] {
    let mut t = [EMPTY; LEN];
    let mut i = 0;
    while i < ENTRIES.len() {
        t[ENTRIES[i].0] = ENTRIES[i].1;
        i += 1;
    }
    t
}

/// Every x86-64 system call, indexed by number; unknown numbers have an empty name and
/// [`How::Nosys`].
pub static TABLE: [Sys; LEN] = build();

/// The entry for x86-64 number `nr`, if it is a known call.
pub fn lookup(nr: u64) -> Option<&'static Sys> {
    let e = TABLE.get(usize::try_from(nr).ok()?)?;
    (!e.name.is_empty()).then_some(e)
}
