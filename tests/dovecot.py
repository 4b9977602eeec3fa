"""A real Dovecot (Debian's dovecot-imapd and dovecot-pop3d) on loopback, for one test.

Started from a configuration written to a temporary directory, on free ports,
with one user whose mail is a Maildir there; stopped afterwards. Not the system
service. It listens for IMAPS and POP3S too, with a self-signed certificate for
127.0.0.1 made at start (``openssl``), which ``ca_file`` holds. Run as root, its
login processes run as ``dovenull`` and the mail as ``dovecot`` (Dovecot refuses
root for both); otherwise everything runs as the user.
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
    ports: dict[str, int]  # by scheme: imap, imaps, pop3, pop3s
    directory: Path

    @property
    def imap_port(self):
        return self.ports["imap"]

    @property
    def pop3_port(self):
        return self.ports["pop3"]

    @property
    def ca_file(self):
        """The server's self-signed certificate (PEM): trusting it trusts the server."""
        return str(self.directory / "cert.pem")

    def url(self, scheme):
        from urllib.parse import quote

        return f"{scheme}://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{self.ports[scheme]}/"


def dovecot_missing():
    if not DOVECOT.exists():
        return f"{DOVECOT} does not exist (apt-get install dovecot-imapd dovecot-pop3d)"
    if shutil.which("openssl") is None:
        return "openssl is needed to make the test Dovecot's certificate (apt-get install openssl)"
    return None


def certificate_make(directory):
    """A self-signed certificate for 127.0.0.1 and localhost, valid for a day."""
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-nodes", "-days", "1"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-keyout", directory / "key.pem", "-out", directory / "cert.pem"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ],
        check=True,
        capture_output=True,
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
    certificate_make(directory)
    ports = {scheme: free_port() for scheme in ("imap", "imaps", "pop3", "pop3s")}
    config = directory / "dovecot.conf"
    config.write_text(
        f"""
base_dir = {directory}/run
state_dir = {directory}/state
log_path = {directory}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = yes
ssl_cert = <{directory}/cert.pem
ssl_key = <{directory}/key.pem
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
    port = {ports["imap"]}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {ports["imaps"]}
    ssl = yes
  }}
}}
service pop3-login {{
  chroot =
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {ports["pop3"]}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {ports["pop3s"]}
    ssl = yes
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
    for port in ports.values():
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
    return process, Dovecot(ports, directory)


def dovecot_stop(process, server):
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    shutil.rmtree(server.directory, ignore_errors=True)
