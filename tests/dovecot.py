"""A real Dovecot (Debian's dovecot-imapd and dovecot-pop3d) on loopback, for one test.

Started from a configuration written to a temporary directory, on free ports,
with one user whose mail is a Maildir there; stopped afterwards. Not the system
service. Run as root, its login processes run as ``dovenull`` and the mail as
``dovecot`` (Dovecot refuses root for both); otherwise everything runs as the user.
"""

import grp
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.mail import free_port

DOVECOT = Path("/usr/sbin/dovecot")
USER, PASSWORD = "bounces", "a secret with spaces, & and /"


@dataclass
class Dovecot:
    imap_port: int
    pop3_port: int
    directory: Path

    def url(self, scheme):
        from urllib.parse import quote

        port = self.imap_port if scheme == "imap" else self.pop3_port
        return f"{scheme}://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/"


def dovecot_missing():
    return (
        None
        if DOVECOT.exists()
        else f"{DOVECOT} does not exist (apt-get install dovecot-imapd dovecot-pop3d)"
    )


def _users():
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        return me, group, me, os.getuid(), os.getgid()
    mail = pwd.getpwnam("dovecot")
    return "dovecot", grp.getgrgid(mail.pw_gid).gr_name, "dovenull", mail.pw_uid, mail.pw_gid


def dovecot_start():
    directory = Path(tempfile.mkdtemp(prefix="signalpost-dovecot-"))
    directory.chmod(0o755)
    internal, internal_group, login, uid, gid = _users()
    mail = directory / "mail"
    mail.mkdir()
    os.chown(mail, uid, gid)
    (directory / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    imap_port, pop3_port = free_port(), free_port()
    config = directory / "dovecot.conf"
    config.write_text(
        f"""
base_dir = {directory}/run
state_dir = {directory}/state
log_path = {directory}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_internal_group = {internal_group}
default_login_user = {login}
first_valid_uid = 0
mail_location = maildir:{mail}/%u
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {directory}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={mail}/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  chroot =
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service submission-login {{
  inet_listener submission {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""
    )
    process = subprocess.Popen(
        [str(DOVECOT), "-F", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    for port in (imap_port, pop3_port):
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    log = directory / "dovecot.log"
                    process.kill()
                    raise RuntimeError(
                        "Dovecot did not start: " + (log.read_text() if log.exists() else "")
                    ) from None
                time.sleep(0.1)
    return process, Dovecot(imap_port, pop3_port, directory)


def dovecot_stop(process, server):
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    shutil.rmtree(server.directory, ignore_errors=True)
