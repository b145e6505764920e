//! What `/proc` says about a task: its scheduling state, and whether it has ended. One
//! parser of `/proc/PID/stat` for the checkpointer, the restorer and the agent.

/// State letter and command name of a task, from `stat` (the contents of a
/// `/proc/PID/stat` or `/proc/PID/task/TID/stat` file): `pid (comm) state …`, where `comm`
/// may itself hold spaces and parentheses, so the state follows the last `)`.
pub fn parse_stat(stat: &str) -> Option<(char, &str)> {
    let (head, tail) = stat.rsplit_once(')')?;
    let state = tail.trim_start().chars().next()?;
    let comm = head.split_once('(').map_or("", |(_, c)| c);
    Some((state, comm))
}

/// State letter (R, S, D, T, t, Z, X…) and command name of process `pid`, None when no
/// such task exists in this pid namespace.
pub fn task_state(pid: u32) -> Option<(char, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|(s, c)| (s, c.to_string()))
}

/// State letter of thread `tid` of process `pid`.
pub fn thread_state(pid: u32, tid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    parse_stat(&stat).map(|(s, _)| s)
}

/// True for the states of a task that has ended (a zombie not reaped yet, or dying).
pub fn is_exited(state: char) -> bool {
    matches!(state, 'Z' | 'X' | 'x')
}

/// True when process `pid` has ended: gone, or an exited task its parent has not reaped.
pub fn is_dead(pid: u32) -> bool {
    task_state(pid).is_none_or(|(s, _)| is_exited(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_with_parentheses_and_spaces() {
        assert_eq!(parse_stat("42 (a) b) c) S 1 42"), Some(('S', "a) b) c")));
        assert_eq!(parse_stat("7 (x) Z 1"), Some(('Z', "x")));
        assert_eq!(parse_stat("7 (x)"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn this_process_runs_and_a_free_pid_is_dead() {
        let me = std::process::id();
        let (state, comm) = task_state(me).expect("own stat");
        assert!(!is_exited(state), "{state}");
        assert!(!comm.is_empty());
        assert!(!is_dead(me));
        assert!(is_dead(u32::MAX));
    }
}
