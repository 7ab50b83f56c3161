"""Stand-in for the pip bootstrap script ansible-test downloads from a host unreachable here.

ansible-test runs it inside a fresh venv with pip's own arguments: bring pip in from the
standard library, then install what it asks for from the package index.
"""

import ensurepip
import os
import subprocess
import sys

# --no-setuptools / --no-wheel are get-pip's own options, not pip's.
GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}

CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

ensurepip.bootstrap(upgrade=True)
# ensurepip points PIP_CONFIG_FILE at /dev/null (ignoring the system's pip.conf and its CA
# bundle), and ansible-test strips the environment: give pip the CA bundle back.
environment = {key: value for key, value in os.environ.items() if key != "PIP_CONFIG_FILE"}
if os.path.exists(CA_BUNDLE):
    environment.setdefault("PIP_CERT", CA_BUNDLE)
arguments = [argument for argument in sys.argv[1:] if argument not in GET_PIP_ONLY]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + arguments, env=environment))
