# bash completion for memgov
_memgov() {
    local cur prev words cword
    _init_completion || return

    # After "--" (or once the command's name is typed) complete the command itself.
    local i
    for ((i = 1; i < cword; i++)); do
        if [[ ${words[i]} == -- ]]; then
            _command_offset $((i + 1))
            return
        fi
    done

    case $prev in
        --stats-json|--log|--trace) _filedir; return ;;
        --html) _filedir html; return ;;
        --profiles-dir) _filedir -d; return ;;
        --ledger) _filedir -d; COMPREPLY+=($(compgen -W "off" -- "$cur")); return ;;
        --socket) _filedir; COMPREPLY+=($(compgen -W "off" -- "$cur")); return ;;
        daemon) COMPREPLY=($(compgen -W "--socket --ledger --max-clients --max-builds-per-user --gate --verbose" -- "$cur")); return ;;
        --bar) COMPREPLY=($(compgen -W "auto always never" -- "$cur")); return ;;
        --backend) COMPREPLY=($(compgen -W "bpf procfs" -- "$cur")); return ;;
        --gate) COMPREPLY=($(compgen -c -- "$cur")); return ;;
        --limit|--headroom|--emergency-floor|--cold-estimate|--jobs|--nice|--backfill-window|--poll-interval|--top|--max-procs|--cpus|--max-clients|--max-builds-per-user) return ;;
        --sort) COMPREPLY=($(compgen -W "peak key last-seen" -- "$cur")); return ;;
        profiles) COMPREPLY=($(compgen -W "list show forget export import" -- "$cur")); return ;;
        status) COMPREPLY=($(compgen -W "--json --prometheus --metrics-file --watch --ledger" -- "$cur")); return ;;
        report) _filedir json; return ;;
    esac

    if [[ ${words[1]} == report && $cur == -* ]]; then
        COMPREPLY=($(compgen -W "--json --top --html --limit --jobs --cpus" -- "$cur"))
    elif [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "--help --version --limit --headroom --emergency-floor --cold-estimate
            --profiles-dir --ledger --socket --jobs --nice --backfill-window --no-curves --gate --no-gate --always-stop --stats-json --trace --log --verbose --bar
            --quiet --top --max-procs --backend --poll-interval --" -- "$cur"))
    elif ((cword == 1)); then
        COMPREPLY=($(compgen -W "check status report daemon profiles version" -- "$cur") $(compgen -c -- "$cur"))
    fi
}
complete -F _memgov memgov
