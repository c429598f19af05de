# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_nixdispatch_global_optspecs
    string join \n builder= mode= connect-timeout= silent-timeout= via= remote-via= json progress= logs= v/verbose q/quiet h/help V/version
end

function __fish_nixdispatch_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_nixdispatch_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_nixdispatch_using_subcommand
    set -l cmd (__fish_nixdispatch_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -l builder -d 'A builder in nix machines-file syntax, e.g. \'ssh-ng://seasmoke x86_64-linux - 8 2 big-parallel,kvm\'. Repeatable; when given, replaces the builders nix is configured with' -r
complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -l mode -d 'Force a mode instead of choosing one' -r -f -a "auto\t'Choose from what the builders and caches hold'
substitute\t'Build nothing: copy every missing path from a cache or a builder\'s store'
remote\t'Build on the reachable builders'
local\t'Build here, with no remote builders'"
complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -l connect-timeout -l probe-timeout -d 'The most one builder probe may take, connection and first command together, in seconds [default: 3, or `connect-timeout` in ~/.config/nixdispatch/config.toml]. After `build`, `--connect-timeout` is nix\'s own (binary caches): write this one in front of `build`, or as `--probe-timeout`' -r
complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -l silent-timeout -d 'How long a builder may stay silent mid-run (no log and no answer to nixdispatch\'s keepalive) before it counts as gone, in seconds [default: 60, or `silent-timeout` in ~/.config/nixdispatch/config.toml]' -r
complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -l via -d 'What runs `home` and `os` builds [default: nh where it is on PATH, else nix]' -r -f -a "nix\t'`nix build`, then the activation script'
nh\t'`nh home` / `nh os`'"
complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -l remote-via -d 'How a remote build runs: `hook` (nix\'s build hook, one ssh session per derivation, dies with this client) or `session` (the derivations copied to the builder, one `nix build` started there that outlives this client, its log streamed here, the outputs copied home). A session is used only when the whole build goes to one builder your own ssh reaches; otherwise the hook, and the run says why' -r -f -a "hook\t'nix\'s build hook on this machine'
session\t'A build session on the builder (the default: faster from a few derivations on, and it outlives this client)'"
complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -l progress -d 'How to show progress: bars on a terminal, plain lines elsewhere' -r -f -a "auto\t'Bars on a terminal, plain lines elsewhere'
bar\t'Live bars (needs a terminal on stderr)'
plain\t'One plain line per event, for CI logs'
tree\t'The dependency tree of what is building, waiting and done, with hosts and times (needs a terminal on stderr)'
none\t'Nothing but errors and the result'"
complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -l logs -d 'Which build logs to show: none, the last lines of failed builds, or every line of every build, prefixed by its name (like nix\'s -L)' -r -f -a "none\t'No build log lines, failed builds included (named, with the `nix log` command)'
failed\t'The last lines of the builds that failed'
all\t'Every line of every build, prefixed by the build\'s name'"
complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -l json -d 'Machine-readable output on stdout: one JSON document, or JSON lines of events for build, home, os and monitor (the last one a summary). After `build`, `--json` is nix\'s own (its result JSON): write this one in front of `build`'
complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -s v -l verbose -d 'Say more (repeat for even more)'
complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -s q -l quiet -d 'Say less: errors and the result only'
complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -s V -l version -d 'Print version'
complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -f -a "build" -d 'Realise installables in the best mode (like `nix build`)'
complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -f -a "home" -d 'Build and activate a home-manager configuration (like `nh home`)'
complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -f -a "os" -d 'Build and activate a NixOS configuration (like `nh os`)'
complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -f -a "plan" -d 'Decide and explain where every missing path will come from; builds and copies nothing'
complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -f -a "probe" -d 'Probe every configured builder over SSH, all at once'
complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -f -a "doctor" -d 'Check the distributed-build setup and say how to fix what is wrong'
complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -f -a "monitor" -d 'Draw a `nix ... --log-format internal-json -v` log read on stdin (like `nom --json`)'
complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -f -a "sessions" -d 'List the remote build sessions on every builder: running, done, failed, lost'
complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -f -a "attach" -d 'Follow a session\'s log to its end, then copy its results here'
complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -f -a "cancel" -d 'Stop a session on its builder, leaving nothing of it running there'
complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -f -a "stats" -d 'What the history has learned: build times per derivation name and host, link speeds, builders\' round trips (from $XDG_STATE_HOME/nixdispatch/history; delete it to forget)'
complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c nixdispatch -n "__fish_nixdispatch_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand build" -l push-to -d 'After success, copy the results to this store: ssh-ng://HOST, file:///DIR, s3://... Repeatable' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand build" -l sign-key -d 'Sign what is pushed with this secret key (nix key generate-secret) [default: the store\'s own secret-key-files]' -r -F
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand build" -l result-file -d 'Write every installable\'s outputs and status (built, fetched, valid, failed, cancelled), and where it was built, to this file' -r -F
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand build" -l result-format -d 'The format of --result-file' -r -f -a "json\t'One JSON document'
junit\t'JUnit XML, one test case per installable'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand build" -l builder -d 'A builder in nix machines-file syntax, e.g. \'ssh-ng://seasmoke x86_64-linux - 8 2 big-parallel,kvm\'. Repeatable; when given, replaces the builders nix is configured with' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand build" -l mode -d 'Force a mode instead of choosing one' -r -f -a "auto\t'Choose from what the builders and caches hold'
substitute\t'Build nothing: copy every missing path from a cache or a builder\'s store'
remote\t'Build on the reachable builders'
local\t'Build here, with no remote builders'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand build" -l connect-timeout -l probe-timeout -d 'The most one builder probe may take, connection and first command together, in seconds [default: 3, or `connect-timeout` in ~/.config/nixdispatch/config.toml]. After `build`, `--connect-timeout` is nix\'s own (binary caches): write this one in front of `build`, or as `--probe-timeout`' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand build" -l silent-timeout -d 'How long a builder may stay silent mid-run (no log and no answer to nixdispatch\'s keepalive) before it counts as gone, in seconds [default: 60, or `silent-timeout` in ~/.config/nixdispatch/config.toml]' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand build" -l via -d 'What runs `home` and `os` builds [default: nh where it is on PATH, else nix]' -r -f -a "nix\t'`nix build`, then the activation script'
nh\t'`nh home` / `nh os`'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand build" -l remote-via -d 'How a remote build runs: `hook` (nix\'s build hook, one ssh session per derivation, dies with this client) or `session` (the derivations copied to the builder, one `nix build` started there that outlives this client, its log streamed here, the outputs copied home). A session is used only when the whole build goes to one builder your own ssh reaches; otherwise the hook, and the run says why' -r -f -a "hook\t'nix\'s build hook on this machine'
session\t'A build session on the builder (the default: faster from a few derivations on, and it outlives this client)'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand build" -l progress -d 'How to show progress: bars on a terminal, plain lines elsewhere' -r -f -a "auto\t'Bars on a terminal, plain lines elsewhere'
bar\t'Live bars (needs a terminal on stderr)'
plain\t'One plain line per event, for CI logs'
tree\t'The dependency tree of what is building, waiting and done, with hosts and times (needs a terminal on stderr)'
none\t'Nothing but errors and the result'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand build" -l logs -d 'Which build logs to show: none, the last lines of failed builds, or every line of every build, prefixed by its name (like nix\'s -L)' -r -f -a "none\t'No build log lines, failed builds included (named, with the `nix log` command)'
failed\t'The last lines of the builds that failed'
all\t'Every line of every build, prefixed by the build\'s name'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand build" -l detach -d 'Start the build as a session on the builder and return once it runs, printing its id; a later run of the same installables, or `attach`, picks up its results'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand build" -l no-local-fallback -d 'When a builder vanishes mid-run, fail instead of finishing the build locally once'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand build" -l ask -d 'Show the plan and ask before building (home and os: then what changes between the current and the new generation, and ask again before activating); needs a terminal'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand build" -l push -d 'After success, copy the results to the reachable builders whose systems fit them (short for --push-to each of them), signed as --sign-key says'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand build" -l json -d 'Machine-readable output on stdout: one JSON document, or JSON lines of events for build, home, os and monitor (the last one a summary). After `build`, `--json` is nix\'s own (its result JSON): write this one in front of `build`'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand build" -s v -l verbose -d 'Say more (repeat for even more)'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand build" -s q -l quiet -d 'Say less: errors and the result only'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand build" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand build" -s V -l version -d 'Print version'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand home" -l flake -d 'The flake holding `homeConfigurations` [default: $NH_FLAKE, $NH_HOME_FLAKE, then .]' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand home" -s c -l configuration -d 'The configuration to build [default: $USER@$(hostname), then $USER]' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand home" -l push-to -d 'After success, copy the results to this store: ssh-ng://HOST, file:///DIR, s3://... Repeatable' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand home" -l sign-key -d 'Sign what is pushed with this secret key (nix key generate-secret) [default: the store\'s own secret-key-files]' -r -F
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand home" -l result-file -d 'Write every installable\'s outputs and status (built, fetched, valid, failed, cancelled), and where it was built, to this file' -r -F
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand home" -l result-format -d 'The format of --result-file' -r -f -a "json\t'One JSON document'
junit\t'JUnit XML, one test case per installable'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand home" -l builder -d 'A builder in nix machines-file syntax, e.g. \'ssh-ng://seasmoke x86_64-linux - 8 2 big-parallel,kvm\'. Repeatable; when given, replaces the builders nix is configured with' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand home" -l mode -d 'Force a mode instead of choosing one' -r -f -a "auto\t'Choose from what the builders and caches hold'
substitute\t'Build nothing: copy every missing path from a cache or a builder\'s store'
remote\t'Build on the reachable builders'
local\t'Build here, with no remote builders'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand home" -l connect-timeout -l probe-timeout -d 'The most one builder probe may take, connection and first command together, in seconds [default: 3, or `connect-timeout` in ~/.config/nixdispatch/config.toml]. After `build`, `--connect-timeout` is nix\'s own (binary caches): write this one in front of `build`, or as `--probe-timeout`' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand home" -l silent-timeout -d 'How long a builder may stay silent mid-run (no log and no answer to nixdispatch\'s keepalive) before it counts as gone, in seconds [default: 60, or `silent-timeout` in ~/.config/nixdispatch/config.toml]' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand home" -l via -d 'What runs `home` and `os` builds [default: nh where it is on PATH, else nix]' -r -f -a "nix\t'`nix build`, then the activation script'
nh\t'`nh home` / `nh os`'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand home" -l remote-via -d 'How a remote build runs: `hook` (nix\'s build hook, one ssh session per derivation, dies with this client) or `session` (the derivations copied to the builder, one `nix build` started there that outlives this client, its log streamed here, the outputs copied home). A session is used only when the whole build goes to one builder your own ssh reaches; otherwise the hook, and the run says why' -r -f -a "hook\t'nix\'s build hook on this machine'
session\t'A build session on the builder (the default: faster from a few derivations on, and it outlives this client)'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand home" -l progress -d 'How to show progress: bars on a terminal, plain lines elsewhere' -r -f -a "auto\t'Bars on a terminal, plain lines elsewhere'
bar\t'Live bars (needs a terminal on stderr)'
plain\t'One plain line per event, for CI logs'
tree\t'The dependency tree of what is building, waiting and done, with hosts and times (needs a terminal on stderr)'
none\t'Nothing but errors and the result'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand home" -l logs -d 'Which build logs to show: none, the last lines of failed builds, or every line of every build, prefixed by its name (like nix\'s -L)' -r -f -a "none\t'No build log lines, failed builds included (named, with the `nix log` command)'
failed\t'The last lines of the builds that failed'
all\t'Every line of every build, prefixed by the build\'s name'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand home" -l detach -d 'Start the build as a session on the builder and return once it runs, printing its id; a later run of the same installables, or `attach`, picks up its results'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand home" -l no-local-fallback -d 'When a builder vanishes mid-run, fail instead of finishing the build locally once'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand home" -l ask -d 'Show the plan and ask before building (home and os: then what changes between the current and the new generation, and ask again before activating); needs a terminal'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand home" -l push -d 'After success, copy the results to the reachable builders whose systems fit them (short for --push-to each of them), signed as --sign-key says'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand home" -l json -d 'Machine-readable output on stdout: one JSON document, or JSON lines of events for build, home, os and monitor (the last one a summary). After `build`, `--json` is nix\'s own (its result JSON): write this one in front of `build`'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand home" -s v -l verbose -d 'Say more (repeat for even more)'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand home" -s q -l quiet -d 'Say less: errors and the result only'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand home" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand home" -s V -l version -d 'Print version'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand os" -l flake -d 'The flake holding `nixosConfigurations` [default: $NH_FLAKE, $NH_OS_FLAKE, then .]' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand os" -s H -l hostname -d 'The configuration to build [default: this machine\'s host name]' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand os" -l push-to -d 'After success, copy the results to this store: ssh-ng://HOST, file:///DIR, s3://... Repeatable' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand os" -l sign-key -d 'Sign what is pushed with this secret key (nix key generate-secret) [default: the store\'s own secret-key-files]' -r -F
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand os" -l result-file -d 'Write every installable\'s outputs and status (built, fetched, valid, failed, cancelled), and where it was built, to this file' -r -F
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand os" -l result-format -d 'The format of --result-file' -r -f -a "json\t'One JSON document'
junit\t'JUnit XML, one test case per installable'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand os" -l builder -d 'A builder in nix machines-file syntax, e.g. \'ssh-ng://seasmoke x86_64-linux - 8 2 big-parallel,kvm\'. Repeatable; when given, replaces the builders nix is configured with' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand os" -l mode -d 'Force a mode instead of choosing one' -r -f -a "auto\t'Choose from what the builders and caches hold'
substitute\t'Build nothing: copy every missing path from a cache or a builder\'s store'
remote\t'Build on the reachable builders'
local\t'Build here, with no remote builders'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand os" -l connect-timeout -l probe-timeout -d 'The most one builder probe may take, connection and first command together, in seconds [default: 3, or `connect-timeout` in ~/.config/nixdispatch/config.toml]. After `build`, `--connect-timeout` is nix\'s own (binary caches): write this one in front of `build`, or as `--probe-timeout`' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand os" -l silent-timeout -d 'How long a builder may stay silent mid-run (no log and no answer to nixdispatch\'s keepalive) before it counts as gone, in seconds [default: 60, or `silent-timeout` in ~/.config/nixdispatch/config.toml]' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand os" -l via -d 'What runs `home` and `os` builds [default: nh where it is on PATH, else nix]' -r -f -a "nix\t'`nix build`, then the activation script'
nh\t'`nh home` / `nh os`'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand os" -l remote-via -d 'How a remote build runs: `hook` (nix\'s build hook, one ssh session per derivation, dies with this client) or `session` (the derivations copied to the builder, one `nix build` started there that outlives this client, its log streamed here, the outputs copied home). A session is used only when the whole build goes to one builder your own ssh reaches; otherwise the hook, and the run says why' -r -f -a "hook\t'nix\'s build hook on this machine'
session\t'A build session on the builder (the default: faster from a few derivations on, and it outlives this client)'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand os" -l progress -d 'How to show progress: bars on a terminal, plain lines elsewhere' -r -f -a "auto\t'Bars on a terminal, plain lines elsewhere'
bar\t'Live bars (needs a terminal on stderr)'
plain\t'One plain line per event, for CI logs'
tree\t'The dependency tree of what is building, waiting and done, with hosts and times (needs a terminal on stderr)'
none\t'Nothing but errors and the result'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand os" -l logs -d 'Which build logs to show: none, the last lines of failed builds, or every line of every build, prefixed by its name (like nix\'s -L)' -r -f -a "none\t'No build log lines, failed builds included (named, with the `nix log` command)'
failed\t'The last lines of the builds that failed'
all\t'Every line of every build, prefixed by the build\'s name'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand os" -l detach -d 'Start the build as a session on the builder and return once it runs, printing its id; a later run of the same installables, or `attach`, picks up its results'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand os" -l no-local-fallback -d 'When a builder vanishes mid-run, fail instead of finishing the build locally once'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand os" -l ask -d 'Show the plan and ask before building (home and os: then what changes between the current and the new generation, and ask again before activating); needs a terminal'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand os" -l push -d 'After success, copy the results to the reachable builders whose systems fit them (short for --push-to each of them), signed as --sign-key says'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand os" -l json -d 'Machine-readable output on stdout: one JSON document, or JSON lines of events for build, home, os and monitor (the last one a summary). After `build`, `--json` is nix\'s own (its result JSON): write this one in front of `build`'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand os" -s v -l verbose -d 'Say more (repeat for even more)'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand os" -s q -l quiet -d 'Say less: errors and the result only'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand os" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand os" -s V -l version -d 'Print version'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand plan" -l builder -d 'A builder in nix machines-file syntax, e.g. \'ssh-ng://seasmoke x86_64-linux - 8 2 big-parallel,kvm\'. Repeatable; when given, replaces the builders nix is configured with' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand plan" -l mode -d 'Force a mode instead of choosing one' -r -f -a "auto\t'Choose from what the builders and caches hold'
substitute\t'Build nothing: copy every missing path from a cache or a builder\'s store'
remote\t'Build on the reachable builders'
local\t'Build here, with no remote builders'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand plan" -l connect-timeout -l probe-timeout -d 'The most one builder probe may take, connection and first command together, in seconds [default: 3, or `connect-timeout` in ~/.config/nixdispatch/config.toml]. After `build`, `--connect-timeout` is nix\'s own (binary caches): write this one in front of `build`, or as `--probe-timeout`' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand plan" -l silent-timeout -d 'How long a builder may stay silent mid-run (no log and no answer to nixdispatch\'s keepalive) before it counts as gone, in seconds [default: 60, or `silent-timeout` in ~/.config/nixdispatch/config.toml]' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand plan" -l via -d 'What runs `home` and `os` builds [default: nh where it is on PATH, else nix]' -r -f -a "nix\t'`nix build`, then the activation script'
nh\t'`nh home` / `nh os`'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand plan" -l remote-via -d 'How a remote build runs: `hook` (nix\'s build hook, one ssh session per derivation, dies with this client) or `session` (the derivations copied to the builder, one `nix build` started there that outlives this client, its log streamed here, the outputs copied home). A session is used only when the whole build goes to one builder your own ssh reaches; otherwise the hook, and the run says why' -r -f -a "hook\t'nix\'s build hook on this machine'
session\t'A build session on the builder (the default: faster from a few derivations on, and it outlives this client)'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand plan" -l progress -d 'How to show progress: bars on a terminal, plain lines elsewhere' -r -f -a "auto\t'Bars on a terminal, plain lines elsewhere'
bar\t'Live bars (needs a terminal on stderr)'
plain\t'One plain line per event, for CI logs'
tree\t'The dependency tree of what is building, waiting and done, with hosts and times (needs a terminal on stderr)'
none\t'Nothing but errors and the result'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand plan" -l logs -d 'Which build logs to show: none, the last lines of failed builds, or every line of every build, prefixed by its name (like nix\'s -L)' -r -f -a "none\t'No build log lines, failed builds included (named, with the `nix log` command)'
failed\t'The last lines of the builds that failed'
all\t'Every line of every build, prefixed by the build\'s name'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand plan" -l json -d 'Machine-readable output on stdout: one JSON document, or JSON lines of events for build, home, os and monitor (the last one a summary). After `build`, `--json` is nix\'s own (its result JSON): write this one in front of `build`'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand plan" -s v -l verbose -d 'Say more (repeat for even more)'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand plan" -s q -l quiet -d 'Say less: errors and the result only'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand plan" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand plan" -s V -l version -d 'Print version'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand probe" -l builder -d 'A builder in nix machines-file syntax, e.g. \'ssh-ng://seasmoke x86_64-linux - 8 2 big-parallel,kvm\'. Repeatable; when given, replaces the builders nix is configured with' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand probe" -l mode -d 'Force a mode instead of choosing one' -r -f -a "auto\t'Choose from what the builders and caches hold'
substitute\t'Build nothing: copy every missing path from a cache or a builder\'s store'
remote\t'Build on the reachable builders'
local\t'Build here, with no remote builders'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand probe" -l connect-timeout -l probe-timeout -d 'The most one builder probe may take, connection and first command together, in seconds [default: 3, or `connect-timeout` in ~/.config/nixdispatch/config.toml]. After `build`, `--connect-timeout` is nix\'s own (binary caches): write this one in front of `build`, or as `--probe-timeout`' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand probe" -l silent-timeout -d 'How long a builder may stay silent mid-run (no log and no answer to nixdispatch\'s keepalive) before it counts as gone, in seconds [default: 60, or `silent-timeout` in ~/.config/nixdispatch/config.toml]' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand probe" -l via -d 'What runs `home` and `os` builds [default: nh where it is on PATH, else nix]' -r -f -a "nix\t'`nix build`, then the activation script'
nh\t'`nh home` / `nh os`'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand probe" -l remote-via -d 'How a remote build runs: `hook` (nix\'s build hook, one ssh session per derivation, dies with this client) or `session` (the derivations copied to the builder, one `nix build` started there that outlives this client, its log streamed here, the outputs copied home). A session is used only when the whole build goes to one builder your own ssh reaches; otherwise the hook, and the run says why' -r -f -a "hook\t'nix\'s build hook on this machine'
session\t'A build session on the builder (the default: faster from a few derivations on, and it outlives this client)'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand probe" -l progress -d 'How to show progress: bars on a terminal, plain lines elsewhere' -r -f -a "auto\t'Bars on a terminal, plain lines elsewhere'
bar\t'Live bars (needs a terminal on stderr)'
plain\t'One plain line per event, for CI logs'
tree\t'The dependency tree of what is building, waiting and done, with hosts and times (needs a terminal on stderr)'
none\t'Nothing but errors and the result'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand probe" -l logs -d 'Which build logs to show: none, the last lines of failed builds, or every line of every build, prefixed by its name (like nix\'s -L)' -r -f -a "none\t'No build log lines, failed builds included (named, with the `nix log` command)'
failed\t'The last lines of the builds that failed'
all\t'Every line of every build, prefixed by the build\'s name'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand probe" -l json -d 'Machine-readable output on stdout: one JSON document, or JSON lines of events for build, home, os and monitor (the last one a summary). After `build`, `--json` is nix\'s own (its result JSON): write this one in front of `build`'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand probe" -s v -l verbose -d 'Say more (repeat for even more)'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand probe" -s q -l quiet -d 'Say less: errors and the result only'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand probe" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand probe" -s V -l version -d 'Print version'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand doctor" -l builder -d 'A builder in nix machines-file syntax, e.g. \'ssh-ng://seasmoke x86_64-linux - 8 2 big-parallel,kvm\'. Repeatable; when given, replaces the builders nix is configured with' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand doctor" -l mode -d 'Force a mode instead of choosing one' -r -f -a "auto\t'Choose from what the builders and caches hold'
substitute\t'Build nothing: copy every missing path from a cache or a builder\'s store'
remote\t'Build on the reachable builders'
local\t'Build here, with no remote builders'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand doctor" -l connect-timeout -l probe-timeout -d 'The most one builder probe may take, connection and first command together, in seconds [default: 3, or `connect-timeout` in ~/.config/nixdispatch/config.toml]. After `build`, `--connect-timeout` is nix\'s own (binary caches): write this one in front of `build`, or as `--probe-timeout`' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand doctor" -l silent-timeout -d 'How long a builder may stay silent mid-run (no log and no answer to nixdispatch\'s keepalive) before it counts as gone, in seconds [default: 60, or `silent-timeout` in ~/.config/nixdispatch/config.toml]' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand doctor" -l via -d 'What runs `home` and `os` builds [default: nh where it is on PATH, else nix]' -r -f -a "nix\t'`nix build`, then the activation script'
nh\t'`nh home` / `nh os`'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand doctor" -l remote-via -d 'How a remote build runs: `hook` (nix\'s build hook, one ssh session per derivation, dies with this client) or `session` (the derivations copied to the builder, one `nix build` started there that outlives this client, its log streamed here, the outputs copied home). A session is used only when the whole build goes to one builder your own ssh reaches; otherwise the hook, and the run says why' -r -f -a "hook\t'nix\'s build hook on this machine'
session\t'A build session on the builder (the default: faster from a few derivations on, and it outlives this client)'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand doctor" -l progress -d 'How to show progress: bars on a terminal, plain lines elsewhere' -r -f -a "auto\t'Bars on a terminal, plain lines elsewhere'
bar\t'Live bars (needs a terminal on stderr)'
plain\t'One plain line per event, for CI logs'
tree\t'The dependency tree of what is building, waiting and done, with hosts and times (needs a terminal on stderr)'
none\t'Nothing but errors and the result'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand doctor" -l logs -d 'Which build logs to show: none, the last lines of failed builds, or every line of every build, prefixed by its name (like nix\'s -L)' -r -f -a "none\t'No build log lines, failed builds included (named, with the `nix log` command)'
failed\t'The last lines of the builds that failed'
all\t'Every line of every build, prefixed by the build\'s name'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand doctor" -l json -d 'Machine-readable output on stdout: one JSON document, or JSON lines of events for build, home, os and monitor (the last one a summary). After `build`, `--json` is nix\'s own (its result JSON): write this one in front of `build`'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand doctor" -s v -l verbose -d 'Say more (repeat for even more)'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand doctor" -s q -l quiet -d 'Say less: errors and the result only'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand doctor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand doctor" -s V -l version -d 'Print version'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand monitor" -l builder -d 'A builder in nix machines-file syntax, e.g. \'ssh-ng://seasmoke x86_64-linux - 8 2 big-parallel,kvm\'. Repeatable; when given, replaces the builders nix is configured with' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand monitor" -l mode -d 'Force a mode instead of choosing one' -r -f -a "auto\t'Choose from what the builders and caches hold'
substitute\t'Build nothing: copy every missing path from a cache or a builder\'s store'
remote\t'Build on the reachable builders'
local\t'Build here, with no remote builders'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand monitor" -l connect-timeout -l probe-timeout -d 'The most one builder probe may take, connection and first command together, in seconds [default: 3, or `connect-timeout` in ~/.config/nixdispatch/config.toml]. After `build`, `--connect-timeout` is nix\'s own (binary caches): write this one in front of `build`, or as `--probe-timeout`' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand monitor" -l silent-timeout -d 'How long a builder may stay silent mid-run (no log and no answer to nixdispatch\'s keepalive) before it counts as gone, in seconds [default: 60, or `silent-timeout` in ~/.config/nixdispatch/config.toml]' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand monitor" -l via -d 'What runs `home` and `os` builds [default: nh where it is on PATH, else nix]' -r -f -a "nix\t'`nix build`, then the activation script'
nh\t'`nh home` / `nh os`'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand monitor" -l remote-via -d 'How a remote build runs: `hook` (nix\'s build hook, one ssh session per derivation, dies with this client) or `session` (the derivations copied to the builder, one `nix build` started there that outlives this client, its log streamed here, the outputs copied home). A session is used only when the whole build goes to one builder your own ssh reaches; otherwise the hook, and the run says why' -r -f -a "hook\t'nix\'s build hook on this machine'
session\t'A build session on the builder (the default: faster from a few derivations on, and it outlives this client)'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand monitor" -l progress -d 'How to show progress: bars on a terminal, plain lines elsewhere' -r -f -a "auto\t'Bars on a terminal, plain lines elsewhere'
bar\t'Live bars (needs a terminal on stderr)'
plain\t'One plain line per event, for CI logs'
tree\t'The dependency tree of what is building, waiting and done, with hosts and times (needs a terminal on stderr)'
none\t'Nothing but errors and the result'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand monitor" -l logs -d 'Which build logs to show: none, the last lines of failed builds, or every line of every build, prefixed by its name (like nix\'s -L)' -r -f -a "none\t'No build log lines, failed builds included (named, with the `nix log` command)'
failed\t'The last lines of the builds that failed'
all\t'Every line of every build, prefixed by the build\'s name'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand monitor" -l json -d 'Machine-readable output on stdout: one JSON document, or JSON lines of events for build, home, os and monitor (the last one a summary). After `build`, `--json` is nix\'s own (its result JSON): write this one in front of `build`'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand monitor" -s v -l verbose -d 'Say more (repeat for even more)'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand monitor" -s q -l quiet -d 'Say less: errors and the result only'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand monitor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand monitor" -s V -l version -d 'Print version'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand sessions" -l builder -d 'A builder in nix machines-file syntax, e.g. \'ssh-ng://seasmoke x86_64-linux - 8 2 big-parallel,kvm\'. Repeatable; when given, replaces the builders nix is configured with' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand sessions" -l mode -d 'Force a mode instead of choosing one' -r -f -a "auto\t'Choose from what the builders and caches hold'
substitute\t'Build nothing: copy every missing path from a cache or a builder\'s store'
remote\t'Build on the reachable builders'
local\t'Build here, with no remote builders'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand sessions" -l connect-timeout -l probe-timeout -d 'The most one builder probe may take, connection and first command together, in seconds [default: 3, or `connect-timeout` in ~/.config/nixdispatch/config.toml]. After `build`, `--connect-timeout` is nix\'s own (binary caches): write this one in front of `build`, or as `--probe-timeout`' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand sessions" -l silent-timeout -d 'How long a builder may stay silent mid-run (no log and no answer to nixdispatch\'s keepalive) before it counts as gone, in seconds [default: 60, or `silent-timeout` in ~/.config/nixdispatch/config.toml]' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand sessions" -l via -d 'What runs `home` and `os` builds [default: nh where it is on PATH, else nix]' -r -f -a "nix\t'`nix build`, then the activation script'
nh\t'`nh home` / `nh os`'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand sessions" -l remote-via -d 'How a remote build runs: `hook` (nix\'s build hook, one ssh session per derivation, dies with this client) or `session` (the derivations copied to the builder, one `nix build` started there that outlives this client, its log streamed here, the outputs copied home). A session is used only when the whole build goes to one builder your own ssh reaches; otherwise the hook, and the run says why' -r -f -a "hook\t'nix\'s build hook on this machine'
session\t'A build session on the builder (the default: faster from a few derivations on, and it outlives this client)'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand sessions" -l progress -d 'How to show progress: bars on a terminal, plain lines elsewhere' -r -f -a "auto\t'Bars on a terminal, plain lines elsewhere'
bar\t'Live bars (needs a terminal on stderr)'
plain\t'One plain line per event, for CI logs'
tree\t'The dependency tree of what is building, waiting and done, with hosts and times (needs a terminal on stderr)'
none\t'Nothing but errors and the result'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand sessions" -l logs -d 'Which build logs to show: none, the last lines of failed builds, or every line of every build, prefixed by its name (like nix\'s -L)' -r -f -a "none\t'No build log lines, failed builds included (named, with the `nix log` command)'
failed\t'The last lines of the builds that failed'
all\t'Every line of every build, prefixed by the build\'s name'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand sessions" -l all -d 'Every session on the builders, also those other machines started and those already used up (copied home, failure shown, lost) [default: this machine\'s, not yet used up]'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand sessions" -l json -d 'Machine-readable output on stdout: one JSON document, or JSON lines of events for build, home, os and monitor (the last one a summary). After `build`, `--json` is nix\'s own (its result JSON): write this one in front of `build`'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand sessions" -s v -l verbose -d 'Say more (repeat for even more)'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand sessions" -s q -l quiet -d 'Say less: errors and the result only'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand sessions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand sessions" -s V -l version -d 'Print version'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand attach" -l builder -d 'A builder in nix machines-file syntax, e.g. \'ssh-ng://seasmoke x86_64-linux - 8 2 big-parallel,kvm\'. Repeatable; when given, replaces the builders nix is configured with' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand attach" -l mode -d 'Force a mode instead of choosing one' -r -f -a "auto\t'Choose from what the builders and caches hold'
substitute\t'Build nothing: copy every missing path from a cache or a builder\'s store'
remote\t'Build on the reachable builders'
local\t'Build here, with no remote builders'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand attach" -l connect-timeout -l probe-timeout -d 'The most one builder probe may take, connection and first command together, in seconds [default: 3, or `connect-timeout` in ~/.config/nixdispatch/config.toml]. After `build`, `--connect-timeout` is nix\'s own (binary caches): write this one in front of `build`, or as `--probe-timeout`' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand attach" -l silent-timeout -d 'How long a builder may stay silent mid-run (no log and no answer to nixdispatch\'s keepalive) before it counts as gone, in seconds [default: 60, or `silent-timeout` in ~/.config/nixdispatch/config.toml]' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand attach" -l via -d 'What runs `home` and `os` builds [default: nh where it is on PATH, else nix]' -r -f -a "nix\t'`nix build`, then the activation script'
nh\t'`nh home` / `nh os`'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand attach" -l remote-via -d 'How a remote build runs: `hook` (nix\'s build hook, one ssh session per derivation, dies with this client) or `session` (the derivations copied to the builder, one `nix build` started there that outlives this client, its log streamed here, the outputs copied home). A session is used only when the whole build goes to one builder your own ssh reaches; otherwise the hook, and the run says why' -r -f -a "hook\t'nix\'s build hook on this machine'
session\t'A build session on the builder (the default: faster from a few derivations on, and it outlives this client)'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand attach" -l progress -d 'How to show progress: bars on a terminal, plain lines elsewhere' -r -f -a "auto\t'Bars on a terminal, plain lines elsewhere'
bar\t'Live bars (needs a terminal on stderr)'
plain\t'One plain line per event, for CI logs'
tree\t'The dependency tree of what is building, waiting and done, with hosts and times (needs a terminal on stderr)'
none\t'Nothing but errors and the result'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand attach" -l logs -d 'Which build logs to show: none, the last lines of failed builds, or every line of every build, prefixed by its name (like nix\'s -L)' -r -f -a "none\t'No build log lines, failed builds included (named, with the `nix log` command)'
failed\t'The last lines of the builds that failed'
all\t'Every line of every build, prefixed by the build\'s name'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand attach" -l json -d 'Machine-readable output on stdout: one JSON document, or JSON lines of events for build, home, os and monitor (the last one a summary). After `build`, `--json` is nix\'s own (its result JSON): write this one in front of `build`'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand attach" -s v -l verbose -d 'Say more (repeat for even more)'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand attach" -s q -l quiet -d 'Say less: errors and the result only'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand attach" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand attach" -s V -l version -d 'Print version'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand cancel" -l builder -d 'A builder in nix machines-file syntax, e.g. \'ssh-ng://seasmoke x86_64-linux - 8 2 big-parallel,kvm\'. Repeatable; when given, replaces the builders nix is configured with' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand cancel" -l mode -d 'Force a mode instead of choosing one' -r -f -a "auto\t'Choose from what the builders and caches hold'
substitute\t'Build nothing: copy every missing path from a cache or a builder\'s store'
remote\t'Build on the reachable builders'
local\t'Build here, with no remote builders'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand cancel" -l connect-timeout -l probe-timeout -d 'The most one builder probe may take, connection and first command together, in seconds [default: 3, or `connect-timeout` in ~/.config/nixdispatch/config.toml]. After `build`, `--connect-timeout` is nix\'s own (binary caches): write this one in front of `build`, or as `--probe-timeout`' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand cancel" -l silent-timeout -d 'How long a builder may stay silent mid-run (no log and no answer to nixdispatch\'s keepalive) before it counts as gone, in seconds [default: 60, or `silent-timeout` in ~/.config/nixdispatch/config.toml]' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand cancel" -l via -d 'What runs `home` and `os` builds [default: nh where it is on PATH, else nix]' -r -f -a "nix\t'`nix build`, then the activation script'
nh\t'`nh home` / `nh os`'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand cancel" -l remote-via -d 'How a remote build runs: `hook` (nix\'s build hook, one ssh session per derivation, dies with this client) or `session` (the derivations copied to the builder, one `nix build` started there that outlives this client, its log streamed here, the outputs copied home). A session is used only when the whole build goes to one builder your own ssh reaches; otherwise the hook, and the run says why' -r -f -a "hook\t'nix\'s build hook on this machine'
session\t'A build session on the builder (the default: faster from a few derivations on, and it outlives this client)'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand cancel" -l progress -d 'How to show progress: bars on a terminal, plain lines elsewhere' -r -f -a "auto\t'Bars on a terminal, plain lines elsewhere'
bar\t'Live bars (needs a terminal on stderr)'
plain\t'One plain line per event, for CI logs'
tree\t'The dependency tree of what is building, waiting and done, with hosts and times (needs a terminal on stderr)'
none\t'Nothing but errors and the result'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand cancel" -l logs -d 'Which build logs to show: none, the last lines of failed builds, or every line of every build, prefixed by its name (like nix\'s -L)' -r -f -a "none\t'No build log lines, failed builds included (named, with the `nix log` command)'
failed\t'The last lines of the builds that failed'
all\t'Every line of every build, prefixed by the build\'s name'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand cancel" -l json -d 'Machine-readable output on stdout: one JSON document, or JSON lines of events for build, home, os and monitor (the last one a summary). After `build`, `--json` is nix\'s own (its result JSON): write this one in front of `build`'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand cancel" -s v -l verbose -d 'Say more (repeat for even more)'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand cancel" -s q -l quiet -d 'Say less: errors and the result only'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand cancel" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand cancel" -s V -l version -d 'Print version'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand stats" -l builder -d 'A builder in nix machines-file syntax, e.g. \'ssh-ng://seasmoke x86_64-linux - 8 2 big-parallel,kvm\'. Repeatable; when given, replaces the builders nix is configured with' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand stats" -l mode -d 'Force a mode instead of choosing one' -r -f -a "auto\t'Choose from what the builders and caches hold'
substitute\t'Build nothing: copy every missing path from a cache or a builder\'s store'
remote\t'Build on the reachable builders'
local\t'Build here, with no remote builders'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand stats" -l connect-timeout -l probe-timeout -d 'The most one builder probe may take, connection and first command together, in seconds [default: 3, or `connect-timeout` in ~/.config/nixdispatch/config.toml]. After `build`, `--connect-timeout` is nix\'s own (binary caches): write this one in front of `build`, or as `--probe-timeout`' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand stats" -l silent-timeout -d 'How long a builder may stay silent mid-run (no log and no answer to nixdispatch\'s keepalive) before it counts as gone, in seconds [default: 60, or `silent-timeout` in ~/.config/nixdispatch/config.toml]' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand stats" -l via -d 'What runs `home` and `os` builds [default: nh where it is on PATH, else nix]' -r -f -a "nix\t'`nix build`, then the activation script'
nh\t'`nh home` / `nh os`'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand stats" -l remote-via -d 'How a remote build runs: `hook` (nix\'s build hook, one ssh session per derivation, dies with this client) or `session` (the derivations copied to the builder, one `nix build` started there that outlives this client, its log streamed here, the outputs copied home). A session is used only when the whole build goes to one builder your own ssh reaches; otherwise the hook, and the run says why' -r -f -a "hook\t'nix\'s build hook on this machine'
session\t'A build session on the builder (the default: faster from a few derivations on, and it outlives this client)'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand stats" -l progress -d 'How to show progress: bars on a terminal, plain lines elsewhere' -r -f -a "auto\t'Bars on a terminal, plain lines elsewhere'
bar\t'Live bars (needs a terminal on stderr)'
plain\t'One plain line per event, for CI logs'
tree\t'The dependency tree of what is building, waiting and done, with hosts and times (needs a terminal on stderr)'
none\t'Nothing but errors and the result'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand stats" -l logs -d 'Which build logs to show: none, the last lines of failed builds, or every line of every build, prefixed by its name (like nix\'s -L)' -r -f -a "none\t'No build log lines, failed builds included (named, with the `nix log` command)'
failed\t'The last lines of the builds that failed'
all\t'Every line of every build, prefixed by the build\'s name'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand stats" -l json -d 'Machine-readable output on stdout: one JSON document, or JSON lines of events for build, home, os and monitor (the last one a summary). After `build`, `--json` is nix\'s own (its result JSON): write this one in front of `build`'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand stats" -s v -l verbose -d 'Say more (repeat for even more)'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand stats" -s q -l quiet -d 'Say less: errors and the result only'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand stats" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand stats" -s V -l version -d 'Print version'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand completions" -l builder -d 'A builder in nix machines-file syntax, e.g. \'ssh-ng://seasmoke x86_64-linux - 8 2 big-parallel,kvm\'. Repeatable; when given, replaces the builders nix is configured with' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand completions" -l mode -d 'Force a mode instead of choosing one' -r -f -a "auto\t'Choose from what the builders and caches hold'
substitute\t'Build nothing: copy every missing path from a cache or a builder\'s store'
remote\t'Build on the reachable builders'
local\t'Build here, with no remote builders'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand completions" -l connect-timeout -l probe-timeout -d 'The most one builder probe may take, connection and first command together, in seconds [default: 3, or `connect-timeout` in ~/.config/nixdispatch/config.toml]. After `build`, `--connect-timeout` is nix\'s own (binary caches): write this one in front of `build`, or as `--probe-timeout`' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand completions" -l silent-timeout -d 'How long a builder may stay silent mid-run (no log and no answer to nixdispatch\'s keepalive) before it counts as gone, in seconds [default: 60, or `silent-timeout` in ~/.config/nixdispatch/config.toml]' -r
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand completions" -l via -d 'What runs `home` and `os` builds [default: nh where it is on PATH, else nix]' -r -f -a "nix\t'`nix build`, then the activation script'
nh\t'`nh home` / `nh os`'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand completions" -l remote-via -d 'How a remote build runs: `hook` (nix\'s build hook, one ssh session per derivation, dies with this client) or `session` (the derivations copied to the builder, one `nix build` started there that outlives this client, its log streamed here, the outputs copied home). A session is used only when the whole build goes to one builder your own ssh reaches; otherwise the hook, and the run says why' -r -f -a "hook\t'nix\'s build hook on this machine'
session\t'A build session on the builder (the default: faster from a few derivations on, and it outlives this client)'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand completions" -l progress -d 'How to show progress: bars on a terminal, plain lines elsewhere' -r -f -a "auto\t'Bars on a terminal, plain lines elsewhere'
bar\t'Live bars (needs a terminal on stderr)'
plain\t'One plain line per event, for CI logs'
tree\t'The dependency tree of what is building, waiting and done, with hosts and times (needs a terminal on stderr)'
none\t'Nothing but errors and the result'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand completions" -l logs -d 'Which build logs to show: none, the last lines of failed builds, or every line of every build, prefixed by its name (like nix\'s -L)' -r -f -a "none\t'No build log lines, failed builds included (named, with the `nix log` command)'
failed\t'The last lines of the builds that failed'
all\t'Every line of every build, prefixed by the build\'s name'"
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand completions" -l json -d 'Machine-readable output on stdout: one JSON document, or JSON lines of events for build, home, os and monitor (the last one a summary). After `build`, `--json` is nix\'s own (its result JSON): write this one in front of `build`'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand completions" -s v -l verbose -d 'Say more (repeat for even more)'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand completions" -s q -l quiet -d 'Say less: errors and the result only'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand completions" -s V -l version -d 'Print version'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand help; and not __fish_seen_subcommand_from build home os plan probe doctor monitor sessions attach cancel stats completions help" -f -a "build" -d 'Realise installables in the best mode (like `nix build`)'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand help; and not __fish_seen_subcommand_from build home os plan probe doctor monitor sessions attach cancel stats completions help" -f -a "home" -d 'Build and activate a home-manager configuration (like `nh home`)'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand help; and not __fish_seen_subcommand_from build home os plan probe doctor monitor sessions attach cancel stats completions help" -f -a "os" -d 'Build and activate a NixOS configuration (like `nh os`)'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand help; and not __fish_seen_subcommand_from build home os plan probe doctor monitor sessions attach cancel stats completions help" -f -a "plan" -d 'Decide and explain where every missing path will come from; builds and copies nothing'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand help; and not __fish_seen_subcommand_from build home os plan probe doctor monitor sessions attach cancel stats completions help" -f -a "probe" -d 'Probe every configured builder over SSH, all at once'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand help; and not __fish_seen_subcommand_from build home os plan probe doctor monitor sessions attach cancel stats completions help" -f -a "doctor" -d 'Check the distributed-build setup and say how to fix what is wrong'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand help; and not __fish_seen_subcommand_from build home os plan probe doctor monitor sessions attach cancel stats completions help" -f -a "monitor" -d 'Draw a `nix ... --log-format internal-json -v` log read on stdin (like `nom --json`)'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand help; and not __fish_seen_subcommand_from build home os plan probe doctor monitor sessions attach cancel stats completions help" -f -a "sessions" -d 'List the remote build sessions on every builder: running, done, failed, lost'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand help; and not __fish_seen_subcommand_from build home os plan probe doctor monitor sessions attach cancel stats completions help" -f -a "attach" -d 'Follow a session\'s log to its end, then copy its results here'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand help; and not __fish_seen_subcommand_from build home os plan probe doctor monitor sessions attach cancel stats completions help" -f -a "cancel" -d 'Stop a session on its builder, leaving nothing of it running there'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand help; and not __fish_seen_subcommand_from build home os plan probe doctor monitor sessions attach cancel stats completions help" -f -a "stats" -d 'What the history has learned: build times per derivation name and host, link speeds, builders\' round trips (from $XDG_STATE_HOME/nixdispatch/history; delete it to forget)'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand help; and not __fish_seen_subcommand_from build home os plan probe doctor monitor sessions attach cancel stats completions help" -f -a "completions" -d 'Print a shell completion script'
complete -c nixdispatch -n "__fish_nixdispatch_using_subcommand help; and not __fish_seen_subcommand_from build home os plan probe doctor monitor sessions attach cancel stats completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
