"""
What the deploy test asks of the AWS emulator (moto's server), with boto3: set
up what a deploy expects to find (a VPC, parameters), read back what a deploy
made, fetch a deployed artifact. One command per run; its input is JSON on
stdin, its answer JSON on stdout. The endpoint and the dummy credentials come
from the environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).

Environment variables of a function are answered by name only (describe), and
by value only where the test runs the function with them (environment).

Usage: python3 aws-inspect.py <command> <region> < input.json
"""

import ast
import json
import sys

import boto3
from botocore.exceptions import ClientError

REGION = None


def client(service):
    return boto3.client(service, region_name=REGION)


def policy_document(document):
    """An IAM policy document as a dict. moto returns a CloudFormation-made inline policy as the text of a Python dict."""
    if isinstance(document, dict):
        return document
    try:
        return json.loads(document)
    except ValueError:
        return ast.literal_eval(document)


def setup_network(_):
    """A VPC with two private subnets in two zones and a security group for the functions."""
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")["Subnet"]["SubnetId"]
        for i, zone in ((1, "a"), (2, "b"))
    ]
    group = ec2.create_security_group(GroupName="xyn-metrics-functions", Description="xyn-metrics functions", VpcId=vpc)["GroupId"]
    return {"vpc": vpc, "subnets": subnets, "securityGroups": [group]}


def put_parameters(parameters):
    ssm = client("ssm")
    for name, value in parameters.items():
        ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
    return {"put": sorted(parameters)}


def role_of(iam, name):
    role = iam.get_role(RoleName=name)["Role"]
    policies = {
        policy: policy_document(iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"])
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]
    }
    return {
        "arn": role["Arn"],
        "trust": policy_document(role["AssumeRolePolicyDocument"]),
        "policies": policies,
        "attached": [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]],
    }


def describe(spec):
    """The stack, its template, and what exists of each resource the test asserts on."""
    cf, lam, iam, events, logs = (client(s) for s in ("cloudformation", "lambda", "iam", "events", "logs"))
    stack = cf.describe_stacks(StackName=spec["stack"])["Stacks"][0]
    resources = {
        r["LogicalResourceId"]: {"type": r["ResourceType"], "physical": r.get("PhysicalResourceId", ""), "status": r["ResourceStatus"]}
        for r in cf.list_stack_resources(StackName=spec["stack"])["StackResourceSummaries"]
    }
    body = cf.get_template(StackName=spec["stack"])["TemplateBody"]
    template = body if isinstance(body, dict) else json.loads(body)
    functions = {}
    for name in spec["functions"]:
        config = lam.get_function_configuration(FunctionName=name)
        try:
            policy = json.loads(lam.get_policy(FunctionName=name)["Policy"])
        except ClientError:
            policy = None
        functions[name] = {
            "runtime": config["Runtime"],
            "handler": config["Handler"],
            "timeout": config["Timeout"],
            "memory": config["MemorySize"],
            "role": config["Role"],
            "environmentNames": sorted(config.get("Environment", {}).get("Variables", {})),
            "vpc": {k: sorted(v) for k, v in config.get("VpcConfig", {}).items() if k in ("SubnetIds", "SecurityGroupIds")},
            "reservedConcurrency": lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions"),
            "codeSha256": config["CodeSha256"],
            "lastModified": config["LastModified"],
            "policy": policy,
        }
    roles = {logical: role_of(iam, r["physical"]) for logical, r in resources.items() if r["type"] == "AWS::IAM::Role"}
    rules = {}
    for logical, r in resources.items():
        if r["type"] == "AWS::Events::Rule":
            rule = events.describe_rule(Name=r["physical"])
            rules[logical] = {
                "arn": rule["Arn"],
                "schedule": rule.get("ScheduleExpression"),
                "state": rule["State"],
                "targets": events.list_targets_by_rule(Rule=r["physical"])["Targets"],
            }
    groups = logs.describe_log_groups(logGroupNamePrefix=spec["logGroupPrefix"])["logGroups"]
    return {
        "status": stack["StackStatus"],
        "lastUpdated": str(stack.get("LastUpdatedTime", "")),
        "resources": resources,
        "template": template,
        "functions": functions,
        "roles": roles,
        "rules": rules,
        "logGroups": {g["logGroupName"]: g.get("retentionInDays") for g in groups},
    }


def environment(spec):
    """A deployed function's environment, values included, to run its zip with (parameter names, no secret)."""
    return client("lambda").get_function_configuration(FunctionName=spec["function"]).get("Environment", {}).get("Variables", {})


def download(spec):
    client("s3").download_file(spec["bucket"], spec["key"], spec["file"])
    return {"file": spec["file"]}


def put_log_event(spec):
    logs = client("logs")
    logs.create_log_stream(logGroupName=spec["group"], logStreamName=spec["stream"])
    logs.put_log_events(
        logGroupName=spec["group"], logStreamName=spec["stream"], logEvents=[{"timestamp": spec["timestamp"], "message": spec["message"]}]
    )
    return {"group": spec["group"]}


def remains(spec):
    """What is left after a remove: the stack, the functions, the roles, the log groups, the parameters."""
    cf, lam, iam, logs, ssm = (client(s) for s in ("cloudformation", "lambda", "iam", "logs", "ssm"))
    try:
        stacks = [s["StackStatus"] for s in cf.describe_stacks(StackName=spec["stack"])["Stacks"]]
    except ClientError:
        stacks = []
    functions = [f["FunctionName"] for f in lam.list_functions()["Functions"] if f["FunctionName"] in spec["functions"]]
    roles = [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"] in spec["roles"]]
    groups = [g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix=spec["logGroupPrefix"])["logGroups"]]
    parameters = [p["Name"] for p in ssm.get_parameters(Names=spec["parameters"])["Parameters"]]
    return {"stacks": stacks, "functions": functions, "roles": roles, "logGroups": groups, "parameters": sorted(parameters)}


COMMANDS = {
    "setup-network": setup_network,
    "put-parameters": put_parameters,
    "describe": describe,
    "environment": environment,
    "download": download,
    "put-log-event": put_log_event,
    "remains": remains,
}

if __name__ == "__main__":
    REGION = sys.argv[2]
    answer = COMMANDS[sys.argv[1]](json.load(sys.stdin))
    json.dump(answer, sys.stdout, default=str)
