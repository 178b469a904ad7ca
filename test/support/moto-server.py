"""
moto_server as the deploy test runs it: moto's own server, with one change.

moto's CloudFormation ValidateTemplate runs cfn-lint and refuses a template on
its first match of any level, warnings included; real CloudFormation's
ValidateTemplate accepts warnings (it checks syntax and structure only). The
framework's templates carry two kinds of warning it cannot avoid (W3005: a
DependsOn that a Ref or GetAtt already implies, which osls writes for a
function's role and for an HTTP API route). Here ValidateTemplate refuses on
errors only; the deploy test lints every template itself with cfn-lint and
lists each warning it accepts, with why (test/support/cfn-lint.ts).

Usage: python3 moto-server.py <port>   (listens on 127.0.0.1 only)
"""

import sys

from moto.cloudformation import models


def _errors_only(validate):
    def validate_template_errors_only(template):
        return [match for match in validate(template) if match.rule.id.startswith("E")]

    return validate_template_errors_only


models.validate_template_cfn_lint = _errors_only(models.validate_template_cfn_lint)

from moto.server import main  # noqa: E402  (after the patch, which must precede any request)

if __name__ == "__main__":
    main(["-H", "127.0.0.1", "-p", sys.argv[1]])
