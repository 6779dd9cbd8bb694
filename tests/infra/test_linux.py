"""DevSec linux-baseline (os-*, sysctl-*, package-*) and the lynis-derived host controls (host-*).

Why each test checks the live host first: the baseline is about what the kernel and the files are
now, not what a role meant to write. Where this machine cannot take a setting (a read-only /proc/sys
in a container or sandbox, a parameter this kernel lacks, auditing refused outside the initial PID
namespace, no SSH server), the role records "not applicable: <reason>" in its state file; the test
then (1) verifies the reason is true right now, (2) checks what is done instead (e.g. the value
persisted for the next boot), and (3) requires the `not_applicable` entry in waivers.yml. So a
not-applicable control can still fail, and nothing is skipped. Expected values are DevSec's own
(dev-sec/linux-baseline controls/*.rb), not copied from the role.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.infra.conftest import role_default, sh

SYSCTL_FILE = role_default("os_hardening", "os_hardening_sysctl_file")
MODPROBE_FILE = role_default("os_hardening", "os_hardening_modprobe_file")

# DevSec sysctl_spec.rb: control -> [(key, accepted values)].
DEVSEC_SYSCTL: dict[str, list[tuple[str, set[str]]]] = {
    "sysctl-02": [("net.ipv4.conf.all.rp_filter", {"1"}), ("net.ipv4.conf.default.rp_filter", {"1"})],
    "sysctl-03": [("net.ipv4.icmp_ignore_bogus_error_responses", {"1"})],
    "sysctl-04": [("net.ipv4.icmp_echo_ignore_broadcasts", {"1"})],
    "sysctl-05": [("net.ipv4.icmp_ratelimit", {"100"})],
    "sysctl-06": [("net.ipv4.icmp_ratemask", {"88089"})],
    "sysctl-07": [("net.ipv4.tcp_timestamps", {"0"})],
    "sysctl-08": [("net.ipv4.conf.all.arp_ignore", {"1", "2"})],
    "sysctl-09": [("net.ipv4.conf.all.arp_announce", {"2"})],
    "sysctl-10": [("net.ipv4.tcp_rfc1337", {"1"})],
    "sysctl-11": [("net.ipv4.tcp_syncookies", {"1"})],
    "sysctl-12": [("net.ipv4.conf.all.shared_media", {"1"}), ("net.ipv4.conf.default.shared_media", {"1"})],
    "sysctl-13": [("net.ipv4.conf.all.accept_source_route", {"0"}), ("net.ipv4.conf.default.accept_source_route", {"0"}),
                  ("net.ipv6.conf.all.accept_source_route", {"0"}), ("net.ipv6.conf.default.accept_source_route", {"0"})],
    "sysctl-14": [("net.ipv4.conf.default.accept_redirects", {"0"}), ("net.ipv4.conf.all.accept_redirects", {"0"})],
    "sysctl-15": [("net.ipv4.conf.all.secure_redirects", {"0"}), ("net.ipv4.conf.default.secure_redirects", {"0"})],
    "sysctl-16": [("net.ipv4.conf.default.send_redirects", {"0"}), ("net.ipv4.conf.all.send_redirects", {"0"})],
    "sysctl-17": [("net.ipv4.conf.all.log_martians", {"1"}), ("net.ipv4.conf.default.log_martians", {"1"})],
    "sysctl-20": [("net.ipv6.conf.default.accept_redirects", {"0"}), ("net.ipv6.conf.all.accept_redirects", {"0"})],
    "sysctl-21": [("net.ipv6.conf.default.router_solicitations", {"0"}), ("net.ipv6.conf.all.router_solicitations", {"0"})],
    "sysctl-22": [("net.ipv6.conf.default.accept_ra_rtr_pref", {"0"})],
    "sysctl-23": [("net.ipv6.conf.default.accept_ra_pinfo", {"0"})],
    "sysctl-24": [("net.ipv6.conf.default.accept_ra_defrtr", {"0"})],
    "sysctl-25": [("net.ipv6.conf.all.accept_ra", {"0"}), ("net.ipv6.conf.default.accept_ra", {"0"})],
    "sysctl-26": [("net.ipv6.conf.default.autoconf", {"0"}), ("net.ipv6.conf.all.autoconf", {"0"})],
    "sysctl-27": [("net.ipv6.conf.default.dad_transmits", {"0"})],
    "sysctl-28": [("net.ipv6.conf.default.max_addresses", {"1"})],
    "sysctl-29": [("kernel.modules_disabled", {"0"})],  # DevSec input kernel_modules_disabled: 0
    "sysctl-30": [("kernel.sysrq", {"0"})],
    "sysctl-31a": [("fs.suid_dumpable", {"0", "2"})],
    "sysctl-32": [("kernel.randomize_va_space", {"2"})],
    "sysctl-34": [("fs.protected_fifos", {"1", "2"}), ("fs.protected_hardlinks", {"1"}), ("fs.protected_regular", {"2"}),
                  ("fs.protected_symlinks", {"1"})],
    "sysctl-35": [("kernel.yama.ptrace_scope", {"2", "3"})],
}
# lynis KRNL-6000 (default.prf) keys beyond DevSec that the role sets (host-08).
LYNIS_SYSCTL: list[tuple[str, set[str]]] = [
    ("kernel.kptr_restrict", {"2"}), ("kernel.dmesg_restrict", {"1"}), ("kernel.core_uses_pid", {"1"}),
    ("kernel.perf_event_paranoid", {"3"}), ("kernel.unprivileged_bpf_disabled", {"1", "2"}),
    ("net.core.bpf_jit_harden", {"2"}), ("dev.tty.ldisc_autoload", {"0"}),
]
# DevSec os-10 filesystems (CIS 1.1.1).
DEVSEC_FILESYSTEMS = ("cramfs", "freevxfs", "jffs2", "hfs", "hfsplus", "squashfs", "udf", "vfat")
# DevSec libraries/suid_blacklist.rb.
DEVSEC_SUID_BLACKLIST = (
    "/usr/bin/rcp", "/usr/bin/rlogin", "/usr/bin/rsh", "/usr/libexec/openssh/ssh-keysign",
    "/usr/lib/openssh/ssh-keysign", "/sbin/netreport", "/usr/sbin/usernetctl", "/usr/sbin/userisdnctl",
    "/usr/sbin/pppd", "/usr/bin/lockfile", "/usr/bin/mail-lock", "/usr/bin/mail-unlock", "/usr/bin/mail-touchlock",
    "/usr/bin/dotlockfile", "/usr/bin/arping", "/usr/sbin/arping", "/usr/sbin/uuidd", "/usr/bin/mtr",
    "/usr/lib/evolution/camel-lock-helper-1.2", "/usr/lib/pt_chown", "/usr/lib/eject/dmcrypt-get-device",
    "/usr/lib/mc/cons.saver",
)


# ------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def state(host: Any, lab: Any) -> dict[str, Any]:
    """The os_hardening role's record; a host it never ran on (or switched off) fails here, loudly."""
    path = f"{lab.paths.etc}/os_hardening.json"
    f = host.file(path)
    if not f.exists:
        pytest.fail(f"{path} is missing: the os_hardening role has not run (./lab up)")
    data = json.loads(f.content_string)
    if not data.get("enabled"):
        pytest.fail(f"OS hardening is switched off ({data.get('reason', 'lab.yml hardening.os: false')}): "
                    "the host was left as the image shipped it")
    return data


def sysctl_live(host: Any, key: str) -> str | None:
    out = host.run(sh("cat", "/proc/sys/" + key.replace(".", "/")))
    return " ".join(out.stdout.split()) if out.rc == 0 else None


def proc_sys_readonly(host: Any) -> bool:
    opts = host.run("findmnt -no OPTIONS -T /proc/sys").stdout.strip().split(",")
    return "ro" in opts


@pytest.fixture(scope="module")
def not_applicable(host: Any, state: dict[str, Any], waivers: dict[str, Any]):
    """`not_applicable(control, item, condition)`: the role recorded `item` as not applicable for a reason
    containing `condition`, and waivers.yml has a `not_applicable` entry for that control and condition.
    Returns the recorded reason. Anything missing fails (nothing is waived silently)."""

    def _check(control: str, item: str | None, condition: str) -> str:
        reason = condition
        if item is not None:  # a setting the role manages: its record must say why it was not applied
            rec = state["items"].get(item)
            assert rec is not None, f"{control}: the role recorded nothing for {item}"
            assert rec["status"] == "not applicable", f"{control}: {item} is {rec['status']}, not 'not applicable'"
            assert condition in rec["reason"], f"{control}: {item}: recorded reason {rec['reason']!r} is not {condition!r}"
            reason = str(rec["reason"])
        for entry in waivers.get("not_applicable", []):
            if control in entry["controls"] and entry["condition"] in condition:
                return reason
        pytest.fail(f"{control}: not applicable ({condition}) but no not_applicable entry in tests/infra/waivers.yml")

    return _check


def check_sysctl(host: Any, state: dict[str, Any], not_applicable: Any, control: str, key: str, ok: set[str]) -> None:
    """Live value in `ok`; else the role's not-applicable record, verified against the machine now."""
    live = sysctl_live(host, key)
    if live in ok:
        return
    managed = key in {s["key"] for s in role_default("os_hardening", "os_hardening_sysctls")}
    if live is None:
        assert host.run(sh("test", "-e", "/proc/sys/" + key.replace(".", "/"))).rc != 0
        not_applicable(control, f"sysctl:{key}" if managed else None, "not in this kernel")
        return
    if proc_sys_readonly(host):
        not_applicable(control, f"sysctl:{key}", "read-only /proc/sys")
        persisted = host.file(SYSCTL_FILE).content_string
        assert re.search(rf"^{re.escape(key)}\s*=\s*({'|'.join(map(re.escape, ok))})\s*$", persisted, re.MULTILINE), \
            f"{control}: {key} is not persisted in {SYSCTL_FILE} for a host where /proc/sys is writable"
        return
    pytest.fail(f"{control}: {key} = {live}, DevSec expects {'/'.join(sorted(ok))}")


# ------------------------------------------------------------------ os-*


def test_os_01_no_hosts_equiv(host: Any, state: dict[str, Any]) -> None:
    """DevSec os-01 Trusted hosts login: /etc/hosts.equiv does not exist."""
    assert not host.file("/etc/hosts.equiv").exists


def test_os_02_shadow(host: Any, state: dict[str, Any]) -> None:
    """DevSec os-02: /etc/shadow root:shadow (Debian), rw owner, r group, nothing for others, not executable."""
    f = host.file("/etc/shadow")
    assert f.is_file and f.user == "root" and f.group == "shadow", f"{f.user}:{f.group}"
    assert f.mode & 0o600 == 0o600 and f.mode & 0o040 and not f.mode & 0o007 and not f.mode & 0o111, oct(f.mode)


def test_os_03_passwd(host: Any, state: dict[str, Any]) -> None:
    """DevSec os-03: /etc/passwd root:root 0644 (writable by the owner only, readable by all)."""
    f = host.file("/etc/passwd")
    assert f.is_file and f.user == "root" and f.group == "root"
    assert f.mode == 0o644, oct(f.mode)


def test_os_03b_password_hashes(host: Any) -> None:
    """DevSec os-03b: no password hash in /etc/passwd (only x or *)."""
    bad = [ln.split(":")[0] for ln in host.file("/etc/passwd").content_string.splitlines()
           if ln and ln.split(":")[1] not in ("x", "*")]
    assert not bad, f"hashes in /etc/passwd: {bad}"


def test_os_04_path(host: Any) -> None:
    """DevSec os-04: no empty entry and no '.' in PATH (this process's and a login shell's)."""
    for what, path in (("verify", host.run("printenv PATH").stdout.strip()),
                       ("login shell", host.run("env -i sh -lc 'echo $PATH'").stdout.strip())):
        parts = path.split(":")
        assert path and "" not in parts and "." not in parts, f"{what} PATH {path!r}"


def login_defs(host: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for ln in host.file("/etc/login.defs").content_string.splitlines():
        ln = ln.split("#", 1)[0].strip()
        if ln:
            k, _, v = ln.partition(" ") if " " in ln else ln.partition("\t")
            out[k.strip()] = v.strip()
    return out


def test_os_05_login_defs(host: Any, state: dict[str, Any]) -> None:
    """DevSec os-05: login.defs root:root, readable by all, not executable; umask 027, password aging
    60/7/7, 5 login retries, 60 s login timeout, UID_MIN/GID_MIN 1000, safe ENV_PATH/ENV_SUPATH."""
    f = host.file("/etc/login.defs")
    assert f.user == "root" and f.group == "root" and f.mode & 0o444 == 0o444 and not f.mode & 0o111, oct(f.mode)
    d = login_defs(host)
    want = {"UMASK": "027", "PASS_MAX_DAYS": "60", "PASS_MIN_DAYS": "7", "PASS_WARN_AGE": "7",
            "LOGIN_RETRIES": "5", "LOGIN_TIMEOUT": "60", "UID_MIN": "1000", "GID_MIN": "1000"}
    wrong = {k: d.get(k) for k, v in want.items() if d.get(k) != v}
    assert not wrong, f"login.defs differs from DevSec: {wrong}"
    assert "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in d.get("ENV_SUPATH", "")
    assert "/usr/local/bin:/usr/bin:/bin" in d.get("ENV_PATH", "")


def setid_files(host: Any) -> list[str]:
    """Setuid/setgid files on the root filesystem, outside other systems' roots (the role's prune list)."""
    prune = " -o ".join(f"-path {p}" for p in role_default("os_hardening", "os_hardening_suid_prune"))
    out = host.run(f"find / -xdev \\( {prune} \\) -prune -o -type f -perm /6000 -print")
    return sorted(p for p in out.stdout.splitlines() if p)


def test_os_06_no_blacklisted_setid(host: Any, state: dict[str, Any]) -> None:
    """DevSec os-06: no program of the SUID/SGID blacklist keeps a setuid or setgid bit."""
    found = set(setid_files(host))
    bad = sorted(found & set(DEVSEC_SUID_BLACKLIST))
    assert not bad, f"blacklisted setuid/setgid programs: {bad}"


def test_os_06_setid_reviewed(host: Any, state: dict[str, Any]) -> None:
    """Every setuid/setgid program on the root filesystem is on the reviewed allowlist (the role's
    os_hardening_suid_allowlist, each with its reason): a new one is a finding until someone decides."""
    allow = {e["path"] for e in role_default("os_hardening", "os_hardening_suid_allowlist")}
    unlisted = [p for p in setid_files(host) if p not in allow]
    assert not unlisted, f"setuid/setgid programs nobody reviewed: {unlisted}"


def test_os_07_unique_ids(host: Any) -> None:
    """DevSec os-07: no duplicate uid in /etc/passwd, no duplicate gid in /etc/group."""
    for path, col in (("/etc/passwd", 2), ("/etc/group", 2)):
        ids = [ln.split(":")[col] for ln in host.file(path).content_string.splitlines() if ln.count(":") >= 2]
        dups = sorted({i for i in ids if ids.count(i) > 1})
        assert not dups, f"duplicate ids in {path}: {dups}"


def test_os_09_no_rhosts_netrc(host: Any) -> None:
    """DevSec os-09: no .rhosts or .netrc within 3 levels of / (CIS 9.2.9-10)."""
    out = host.run(r"find / -maxdepth 3 \( -iname .rhosts -o -iname .netrc \) -print 2>/dev/null")
    assert out.stdout.strip() == "", out.stdout


def test_os_10_unused_filesystems(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec os-10: `install <fs> /bin/true` for cramfs, freevxfs, jffs2, hfs, hfsplus, squashfs, udf and
    vfat (not vfat on EFI hosts). A filesystem mounted on this host right now stays loadable (not applicable)."""
    text = host.file(MODPROBE_FILE).content_string
    mounted = {ln.split()[2] for ln in host.file("/proc/self/mounts").content_string.splitlines() if len(ln.split()) > 2}
    for fs in DEVSEC_FILESYSTEMS:
        if re.search(rf"^install {fs} /bin/true$", text, re.MULTILINE):
            continue
        if fs in mounted:
            not_applicable("os-10", f"module:{fs}", "mounted here right now")
        elif fs == "vfat" and host.file("/sys/firmware/efi").exists:
            not_applicable("os-10", f"module:{fs}", "EFI")
        else:
            pytest.fail(f"os-10: {fs} is not disabled in {MODPROBE_FILE}")


def test_os_11_log_directory(host: Any) -> None:
    """DevSec os-11: /var/log is a directory owned by root, group root or syslog."""
    d = host.file("/var/log")
    assert d.is_directory and d.user == "root" and d.group in ("root", "syslog"), f"{d.user}:{d.group}"


def test_os_12_cpu_vulnerabilities(host: Any, waived: Any) -> None:
    """DevSec os-12: no file in /sys/devices/system/cpu/vulnerabilities says 'vulnerable'. The CPU and its
    microcode belong to the hypervisor on a VM; what remains vulnerable is waived by name."""
    out = host.run("grep -H . /sys/devices/system/cpu/vulnerabilities/*")
    vulnerable = sorted(ln.split("/")[-1].split(":")[0] for ln in out.stdout.splitlines() if "ulnerable" in ln)
    if vulnerable:
        w = waived("os-12", "vulnerabilities")
        allowed = set(w.get("names", []))
        assert set(vulnerable) <= allowed, f"vulnerable beyond the waiver: {sorted(set(vulnerable) - allowed)}"


def test_os_13_cron(host: Any, state: dict[str, Any]) -> None:
    """DevSec os-13: cron files and directories owned by root, nothing for group and others."""
    files = ["/etc/crontab", "/etc/cron.hourly", "/etc/cron.daily", "/etc/cron.weekly", "/etc/cron.monthly", "/etc/cron.d"]
    present = [p for p in files if host.file(p).exists]
    assert present, "cron is not installed (the os_hardening role installs it for unattended upgrades)"
    bad = [f"{p} {host.file(p).user} {oct(host.file(p).mode)}" for p in present
           if host.file(p).user != "root" or host.file(p).mode & 0o077]
    assert not bad, bad


MOUNT_OPTIONS = {
    "noexec": ["/boot", "/dev", "/dev/shm", "/tmp", "/var/log", "/var/log/audit", "/var/tmp"],
    "nosuid": ["/boot", "/dev", "/dev/shm", "/home", "/run", "/tmp", "/var", "/var/log", "/var/log/audit", "/var/tmp"],
    "nodev": ["/boot", "/dev/shm", "/home", "/run", "/tmp", "/var", "/var/log", "/var/log/audit", "/var/tmp"],
}


def mount_options(host: Any) -> dict[str, set[str]]:
    out = host.run("findmnt -rno TARGET,OPTIONS")
    return {t: set(o.split(",")) for t, o in (ln.split(" ", 1) for ln in out.stdout.splitlines() if " " in ln)}


def check_mount_option(host: Any, waived: Any, option: str, control: str) -> None:
    mounts = mount_options(host)
    missing = sorted(m for m in MOUNT_OPTIONS[option] if m in mounts and option not in mounts[m])
    if missing:
        w = waived(control, option)
        allowed = set(w.get("mounts", []))
        assert set(missing) <= allowed, f"{control}: {option} missing on {sorted(set(missing) - allowed)}"


def test_os_14_noexec(host: Any, waived: Any) -> None:
    """DevSec os-14: separately mounted /boot, /dev, /dev/shm, /tmp, /var/log, /var/tmp carry noexec
    (mount points the role cannot remount are waived by name)."""
    check_mount_option(host, waived, "noexec", "os-14")


def test_os_15_nosuid(host: Any, waived: Any) -> None:
    """DevSec os-15: separately mounted /boot, /dev, /dev/shm, /home, /run, /tmp, /var... carry nosuid."""
    check_mount_option(host, waived, "nosuid", "os-15")


def test_os_16_nodev(host: Any, waived: Any) -> None:
    """DevSec os-16: separately mounted /boot, /dev/shm, /home, /run, /tmp, /var... carry nodev."""
    check_mount_option(host, waived, "nodev", "os-16")


# ------------------------------------------------------------------ package-*


FORBIDDEN_PACKAGES = {
    "package-01": ["inetd", "openbsd-inetd", "xinetd"],
    "package-02": ["telnetd", "inetutils-telnetd"],
    "package-03": ["rsh-server", "rsh-redone-server"],
    "package-05": ["ypserv"],
    "package-06": ["tftpd", "tftpd-hpa", "atftpd", "tftp-server"],
    "package-09": ["prelink"],
}
"""DevSec package-01 inetd/xinetd, -02 telnet server, -03 rsh server, -05 NIS server, -06 tftp server,
-09 prelink (Debian names added)."""


def check_not_installed(host: Any, control: str) -> None:
    installed = [p for p in FORBIDDEN_PACKAGES[control] if host.package(p).is_installed]
    assert not installed, f"{control}: installed: {installed}"


def test_package_01_do_not_run_deprecated_inetd_or(host: Any) -> None:
    """DevSec package-01 Do not run deprecated inetd or xinetd."""
    check_not_installed(host, "package-01")


def test_package_02_do_not_install_telnet_server(host: Any) -> None:
    """DevSec package-02 Do not install Telnet server."""
    check_not_installed(host, "package-02")


def test_package_03_do_not_install_rsh_server(host: Any) -> None:
    """DevSec package-03 Do not install rsh server."""
    check_not_installed(host, "package-03")


def test_package_05_do_not_install_ypserv_server_nis(host: Any) -> None:
    """DevSec package-05 Do not install ypserv server (NIS)."""
    check_not_installed(host, "package-05")


def test_package_06_do_not_install_tftp_server(host: Any) -> None:
    """DevSec package-06 Do not install tftp server."""
    check_not_installed(host, "package-06")


def test_package_09_cis_additional_process_hardening(host: Any) -> None:
    """DevSec package-09 CIS: Additional process hardening."""
    check_not_installed(host, "package-09")


def test_package_08_auditd(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec package-08: auditd installed with raw logs, incremental flush, keep_logs, SUSPEND on full or
    failing disks; running with the lab's rules loaded - or, where the kernel refuses audit requests
    (outside the initial PID namespace), recorded as not applicable after checking that it does."""
    assert host.package("auditd").is_installed
    conf = {}
    for ln in host.file("/etc/audit/auditd.conf").content_string.splitlines():
        if "=" in ln and not ln.lstrip().startswith("#"):
            k, v = ln.split("=", 1)
            conf[k.strip()] = v.strip()
    want = {"log_file": "/var/log/audit/audit.log", "log_format": "raw", "max_log_file_action": "keep_logs",
            "space_left": "75", "action_mail_acct": "root", "space_left_action": "syslog", "admin_space_left": "50",
            "admin_space_left_action": "suspend", "disk_full_action": "suspend", "disk_error_action": "suspend"}
    wrong = {k: conf.get(k) for k, v in want.items() if (conf.get(k) or "").lower() != v}
    assert not wrong, f"auditd.conf differs from DevSec: {wrong}"
    assert re.match(r"^(incremental|incremental_async)$", conf.get("flush", ""), re.IGNORECASE), conf.get("flush")
    status = host.run("auditctl -s")
    if status.rc != 0:
        not_applicable("package-08", "auditd", "the kernel refuses audit requests")
        return
    rules = host.run("auditctl -l").stdout
    for key in ("identity", "time-change", "privileged", "sysctl"):
        assert f"-k {key}" in rules or f"key={key}" in rules, f"audit rule {key} is not loaded"


# ------------------------------------------------------------------ sysctl-*


def test_sysctl_01_forwarding(host: Any, state: dict[str, Any], waived: Any) -> None:
    """DevSec sysctl-01: IPv4 forwarding off (input sysctl_forwarding=false). A host that routes for
    containers or sandboxes keeps it on (the DevSec input set to true), by waiver."""
    values = {k: sysctl_live(host, k) for k in ("net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding")}
    if any(v != "0" for v in values.values()):
        waived("sysctl-01", "forwarding off")
        assert "net.ipv4.ip_forward" not in host.file(SYSCTL_FILE).content_string, "the role must not force forwarding"


def test_sysctl_19_ipv6_forwarding(host: Any, state: dict[str, Any], waived: Any) -> None:
    """DevSec sysctl-19: IPv6 forwarding off, unless the host routes for containers (waiver as sysctl-01)."""
    if sysctl_live(host, "net.ipv6.conf.all.forwarding") not in ("0", None):
        waived("sysctl-19", "forwarding off")


def devsec_sysctl(host: Any, state: dict[str, Any], not_applicable: Any, control: str) -> None:
    """Each parameter of a DevSec sysctl control: live value, or a verified not-applicable record."""
    for key, ok in DEVSEC_SYSCTL[control]:
        check_sysctl(host, state, not_applicable, control, key, ok)


def test_sysctl_02_reverse_path_filtering(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-02 Reverse path filtering."""
    devsec_sysctl(host, state, not_applicable, "sysctl-02")


def test_sysctl_03_icmp_ignore_bogus_error_responses(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-03 ICMP ignore bogus error responses."""
    devsec_sysctl(host, state, not_applicable, "sysctl-03")


def test_sysctl_04_icmp_echo_ignore_broadcasts(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-04 ICMP echo ignore broadcasts."""
    devsec_sysctl(host, state, not_applicable, "sysctl-04")


def test_sysctl_05_icmp_ratelimit(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-05 ICMP ratelimit."""
    devsec_sysctl(host, state, not_applicable, "sysctl-05")


def test_sysctl_06_icmp_ratemask(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-06 ICMP ratemask."""
    devsec_sysctl(host, state, not_applicable, "sysctl-06")


def test_sysctl_07_tcp_timestamps(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-07 TCP timestamps."""
    devsec_sysctl(host, state, not_applicable, "sysctl-07")


def test_sysctl_08_arp_ignore(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-08 ARP ignore."""
    devsec_sysctl(host, state, not_applicable, "sysctl-08")


def test_sysctl_09_arp_announce(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-09 ARP announce."""
    devsec_sysctl(host, state, not_applicable, "sysctl-09")


def test_sysctl_10_tcp_rfc1337_protect_against_tcp_time(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-10 TCP RFC1337 Protect Against TCP Time-Wait."""
    devsec_sysctl(host, state, not_applicable, "sysctl-10")


def test_sysctl_11_protection_against_syn_flood_attacks(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-11 Protection against SYN flood attacks."""
    devsec_sysctl(host, state, not_applicable, "sysctl-11")


def test_sysctl_12_shared_media_ip_architecture(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-12 Shared Media IP Architecture."""
    devsec_sysctl(host, state, not_applicable, "sysctl-12")


def test_sysctl_13_disable_source_routing(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-13 Disable Source Routing."""
    devsec_sysctl(host, state, not_applicable, "sysctl-13")


def test_sysctl_14_disable_acceptance_of_all_ipv4_redirected(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-14 Disable acceptance of all IPv4 redirected packets."""
    devsec_sysctl(host, state, not_applicable, "sysctl-14")


def test_sysctl_15_disable_acceptance_of_all_secure_redirected(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-15 Disable acceptance of all secure redirected packets."""
    devsec_sysctl(host, state, not_applicable, "sysctl-15")


def test_sysctl_16_disable_sending_of_redirects_packets(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-16 Disable sending of redirects packets."""
    devsec_sysctl(host, state, not_applicable, "sysctl-16")


def test_sysctl_17_disable_log_martians(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-17 Disable log martians."""
    devsec_sysctl(host, state, not_applicable, "sysctl-17")


def test_sysctl_20_disable_acceptance_of_all_ipv6_redirected(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-20 Disable acceptance of all IPv6 redirected packets."""
    devsec_sysctl(host, state, not_applicable, "sysctl-20")


def test_sysctl_21_disable_acceptance_of_ipv6_router_solicitations(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-21 Disable acceptance of IPv6 router solicitations messages."""
    devsec_sysctl(host, state, not_applicable, "sysctl-21")


def test_sysctl_22_disable_accept_router_preference_from_router(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-22 Disable Accept Router Preference from router advertisement."""
    devsec_sysctl(host, state, not_applicable, "sysctl-22")


def test_sysctl_23_disable_learning_prefix_information_from_router(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-23 Disable learning Prefix Information from router advertisement."""
    devsec_sysctl(host, state, not_applicable, "sysctl-23")


def test_sysctl_24_disable_learning_hop_limit_from_router(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-24 Disable learning Hop limit from router advertisement."""
    devsec_sysctl(host, state, not_applicable, "sysctl-24")


def test_sysctl_25_disable_the_system_s_acceptance_of(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-25 Disable the system's acceptance of router advertisement."""
    devsec_sysctl(host, state, not_applicable, "sysctl-25")


def test_sysctl_26_disable_ipv6_autoconfiguration(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-26 Disable IPv6 autoconfiguration."""
    devsec_sysctl(host, state, not_applicable, "sysctl-26")


def test_sysctl_27_disable_neighbor_solicitations_to_send_out(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-27 Disable neighbor solicitations to send out per address."""
    devsec_sysctl(host, state, not_applicable, "sysctl-27")


def test_sysctl_28_assign_one_global_unicast_ipv6_addresses(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-28 Assign one global unicast IPv6 addresses to each interface."""
    devsec_sysctl(host, state, not_applicable, "sysctl-28")


def test_sysctl_29_disable_loading_kernel_modules(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-29 Disable loading kernel modules."""
    devsec_sysctl(host, state, not_applicable, "sysctl-29")


def test_sysctl_30_magic_sysrq(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-30 Magic SysRq."""
    devsec_sysctl(host, state, not_applicable, "sysctl-30")


def test_sysctl_31a_secure_core_dumps_dump_settings(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-31a Secure Core Dumps - dump settings."""
    devsec_sysctl(host, state, not_applicable, "sysctl-31a")


def test_sysctl_32_kernel_randomize_va_space(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-32 kernel.randomize_va_space."""
    devsec_sysctl(host, state, not_applicable, "sysctl-32")


def test_sysctl_34_ensure_links_are_protected(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-34 Ensure links are protected."""
    devsec_sysctl(host, state, not_applicable, "sysctl-34")


def test_sysctl_35_restrict_ptrace_attach_to_privileged_users(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """DevSec sysctl-35 Restrict ptrace attach to privileged users."""
    devsec_sysctl(host, state, not_applicable, "sysctl-35")


def test_sysctl_33_nx(host: Any) -> None:
    """DevSec sysctl-33: the CPU's NX flag is on (exec-shield is for kernels without it)."""
    assert re.search(r"^flags\s*:.*\bnx\b", host.file("/proc/cpuinfo").content_string, re.MULTILINE)


# ------------------------------------------------------------------ host-* (lynis-derived)


def test_host_01_core_dumps(host: Any, state: dict[str, Any]) -> None:
    """lynis KRNL-5820: hard core limit 0 for every user, root included."""
    text = host.run("cat /etc/security/limits.conf /etc/security/limits.d/*.conf").stdout
    entries = {(c[0], c[1]) for c in (ln.split() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#"))
               if len(c) == 4 and c[2] == "core" and c[3] == "0"}
    assert ("*", "hard") in entries and ("root", "hard") in entries, entries


def test_host_02_password_quality(host: Any, state: dict[str, Any]) -> None:
    """lynis AUTH-9262; ASVS 4.0.3 V2.1.1: pam_pwquality in common-password, minimum length >= 12."""
    assert re.search(r"^\s*password\s+\S+\s+pam_pwquality\.so", host.file("/etc/pam.d/common-password").content_string, re.MULTILINE)
    conf = host.run("cat /etc/security/pwquality.conf /etc/security/pwquality.conf.d/*.conf").stdout
    lens = [int(m) for m in re.findall(r"^\s*minlen\s*=\s*(\d+)", conf, re.MULTILINE)]
    assert lens and lens[-1] >= 12, f"minlen {lens}"


def test_host_03_lockout(host: Any, state: dict[str, Any]) -> None:
    """ASVS 4.0.3 V2.2.1 (lynis AUTH-9408 area): pam_faillock counts failures and locks after at most 5;
    root is never locked (no even_deny_root), so the lab host cannot be locked out by brute force."""
    auth = host.file("/etc/pam.d/common-auth").content_string
    assert re.search(r"pam_faillock\.so\s+preauth", auth) and re.search(r"pam_faillock\.so\s+authfail", auth), auth
    assert "pam_faillock.so" in host.file("/etc/pam.d/common-account").content_string
    conf = host.file("/etc/security/faillock.conf").content_string
    deny = re.findall(r"^\s*deny\s*=\s*(\d+)", conf, re.MULTILINE)
    assert deny and 1 <= int(deny[-1]) <= 5, f"deny = {deny}"
    assert not re.search(r"^\s*even_deny_root", conf, re.MULTILINE), "root must not be locked out"


def test_host_04_unattended_upgrades(host: Any, state: dict[str, Any]) -> None:
    """lynis PKGS-7420: unattended-upgrades installed and switched on daily, with something running it."""
    assert host.package("unattended-upgrades").is_installed
    cfg = host.run("apt-config dump APT::Periodic").stdout
    assert 'APT::Periodic::Unattended-Upgrade "1"' in cfg and 'APT::Periodic::Update-Package-Lists "1"' in cfg, cfg
    # Security updates need the Debian-Security origin among apt's sources (lynis PKGS-7388 is skipped in
    # /etc/lynis/custom.prf because it cannot read deb822 .sources: this is its replacement).
    assert "l=Debian-Security" in host.run("apt-cache policy").stdout, "no Debian-Security origin in apt's sources"
    if host.run("test -d /run/systemd/system").rc == 0:
        assert host.service("apt-daily-upgrade.timer").is_enabled
    else:
        assert host.file("/etc/cron.daily/apt-compat").exists
        assert host.run("supervisorctl status cron").stdout.split()[1:2] == ["RUNNING"], "cron is not running"


def test_host_05_no_world_writable(host: Any, state: dict[str, Any]) -> None:
    """lynis FILE-7524 / CIS 7.1.11: no world-writable file in system paths, no world-writable directory
    there without the sticky bit."""
    roots = [p for p in role_default("os_hardening", "os_hardening_system_paths") if host.file(p).exists]
    out = host.run(sh("find", *roots, "-xdev", "(", "(", "-type", "f", "-perm", "-0002", ")", "-o",
                      "(", "-type", "d", "-perm", "-0002", "!", "-perm", "-1000", ")", ")", "-print"))
    assert out.stdout.strip() == "", out.stdout[:2000]


def test_host_06_sshd(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """lynis SSH-7408: where an SSH server is installed, no root password login, no password auth, no
    forwarding, at most 3 tries; without one, the role recorded it as not applicable."""
    if not host.file("/usr/sbin/sshd").exists:
        not_applicable("host-06", "sshd", "no SSH server installed")
        return
    eff = {}
    for ln in host.run("sshd -T").stdout.splitlines():
        k, _, v = ln.partition(" ")
        eff[k] = v
    assert eff.get("permitrootlogin") in ("no", "prohibit-password", "without-password"), eff.get("permitrootlogin")
    assert eff.get("passwordauthentication") == "no" and eff.get("x11forwarding") == "no"
    assert eff.get("allowtcpforwarding") == "no" and int(eff.get("maxauthtries", "6")) <= 3


def test_host_07_audit_rules_written(host: Any, state: dict[str, Any]) -> None:
    """lynis ACCT-9630: audit rules for identity files, time changes and privileged programs exist on disk
    (loaded where the kernel audits: package-08)."""
    rules = host.file(role_default("os_hardening", "os_hardening_audit_rules_file")).content_string
    for key in ("identity", "time-change", "privileged"):
        assert f"-k {key}" in rules, f"no audit rule with key {key}"
    assert "-w /etc/shadow -p wa -k identity" in rules


@pytest.mark.parametrize(("key", "ok"), LYNIS_SYSCTL, ids=[k for k, _ in LYNIS_SYSCTL])
def test_host_08_lynis_kernel_parameters(host: Any, state: dict[str, Any], not_applicable: Any, key: str,
                                         ok: set[str]) -> None:
    """lynis KRNL-6000 parameters beyond DevSec (kptr_restrict, dmesg_restrict, BPF, perf, ldisc)."""
    check_sysctl(host, state, not_applicable, "host-08", key, ok)


def test_host_09_banner(host: Any, state: dict[str, Any]) -> None:
    """lynis BANN-7126/7130: login banners carry a legal notice and no OS name or version."""
    for path in ("/etc/issue", "/etc/issue.net"):
        text = host.file(path).content_string
        assert "authorized" in text.lower(), f"{path} has no legal notice"
        assert not re.search(r"debian|\\[rvsnm]|GNU/Linux", text, re.IGNORECASE), f"{path} discloses the OS: {text!r}"


def test_host_10_hardening_recorded(state: dict[str, Any]) -> None:
    """Every setting the role skipped carries a reason (issue 18: never silently skipped), and the setuid
    review left nothing unlisted."""
    silent = [k for k, v in state["items"].items() if v["status"] != "applied" and not v.get("reason")]
    assert not silent, f"not applied without a reason: {silent}"
    assert {v["status"] for v in state["items"].values()} <= {"applied", "not applicable"}, \
        {k: v for k, v in state["items"].items() if v["status"] not in ("applied", "not applicable")}


def test_host_11_compilers_root_only(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """lynis HRDN-7222: every installed compiler and the assembler are root:root and run by root only, held
    by dpkg-statoverride so an upgrade does not reopen them (a service account cannot build an exploit)."""
    rec = state["items"].get("compilers-root-only")
    assert rec is not None, "the role recorded nothing for the compilers"
    if rec["status"] != "applied":
        not_applicable("host-11", "compilers-root-only", "no compiler installed")
        return
    names = role_default("os_hardening", "os_hardening_root_only_compilers")
    found = host.run(sh("sh", "-c", " ".join(f"command -v {n};" for n in names) + " true")).stdout.split()
    real = {host.run(sh("realpath", p)).stdout.strip() for p in found}
    assert real and real == set(rec["paths"]), (real, rec["paths"])
    for path in real:
        f = host.file(path)
        assert (f.user, f.group) == ("root", "root") and f.mode & 0o007 == 0, f"{path}: {f.user}:{f.group} {oct(f.mode)}"
        assert host.run(sh("dpkg-statoverride", "--list", path)).rc == 0, f"{path} has no dpkg-statoverride"


def test_host_12_process_accounting(host: Any, state: dict[str, Any], not_applicable: Any) -> None:
    """lynis ACCT-9622: process accounting is on: a command that ends adds a record to the file."""
    pacct = role_default("os_hardening", "os_hardening_pacct_file")
    grew = host.run(sh("sh", "-c", f'b=$(stat -c %s {pacct}); /bin/true; a=$(stat -c %s {pacct}); [ "$b" != "$a" ]'))
    if grew.rc != 0:
        not_applicable("host-12", "process-accounting", "the kernel refused accounting")
        return
    assert state["items"]["process-accounting"]["status"] == "applied"


def test_host_13_rootkit_scan(host: Any, state: dict[str, Any]) -> None:
    """lynis HRDN-7230: chkrootkit installed and run daily by cron.daily (cron runs: host-04)."""
    assert host.package("chkrootkit").is_installed
    assert re.search(r'^RUN_DAILY="true"', host.file("/etc/chkrootkit/chkrootkit.conf").content_string, re.MULTILINE)
    assert host.file("/etc/cron.daily/chkrootkit").exists and host.file("/usr/sbin/chkrootkit-daily").is_file
