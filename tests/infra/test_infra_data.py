"""Data stack: buckets, tables and key are secure by construction (template properties)."""

from __future__ import annotations

from aws_cdk.assertions import Match

from flywheel.resources import BUCKETS, TABLES
from tests.infra.synth import Synth

DATA = "FlywheelData"


def test_data_key_is_a_rotating_customer_managed_key(synth: Synth) -> None:
    template = synth.template(DATA)
    template.has_resource_properties(
        "AWS::KMS::Key", {"EnableKeyRotation": True, "RotationPeriodInDays": 365}
    )
    template.has_resource_properties("AWS::KMS::Alias", {"AliasName": f"alias/{synth.prefix}-data"})


def test_data_buckets_are_private_versioned_kms_encrypted_and_logged(synth: Synth) -> None:
    template = synth.template(DATA)
    for bucket in BUCKETS:
        # Logical ids are the ones in flywheel.resources (shared with the local runtime).
        resource = synth.templates[DATA]["Resources"][bucket.logical_id]
        assert resource["Type"] == "AWS::S3::Bucket"
        props = resource["Properties"]
        encryption = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        assert "Fn::GetAtt" in encryption["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert props["LoggingConfiguration"]["LogFilePrefix"] == f"{bucket.logical_id}/"
        assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
        # Bucket policy: no plain HTTP, nothing older than TLS 1.2.
        template.has_resource_properties(
            "AWS::S3::BucketPolicy",
            {
                "Bucket": {"Ref": bucket.logical_id},
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            Match.object_like(
                                {
                                    "Effect": "Deny",
                                    "Action": "s3:*",
                                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                }
                            ),
                            Match.object_like(
                                {
                                    "Effect": "Deny",
                                    "Action": "s3:*",
                                    "Condition": {"NumericLessThan": {"s3:TlsVersion": 1.2}},
                                }
                            ),
                        ]
                    )
                },
            },
        )


def test_access_log_bucket_is_private_and_expires_logs(synth: Synth) -> None:
    # S3 server access logs can only be delivered to an SSE-S3 bucket.
    synth.template(DATA).has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                ]
            },
            "PublicAccessBlockConfiguration": Match.object_like({"BlockPublicAcls": True}),
            "VersioningConfiguration": {"Status": "Enabled"},
            "LifecycleConfiguration": {
                "Rules": [Match.object_like({"Id": "expire-access-logs", "Status": "Enabled"})]
            },
        },
    )


def test_tables_follow_the_shared_definitions(synth: Synth) -> None:
    resources = synth.templates[DATA]["Resources"]
    for table in TABLES:
        props = resources[table.logical_id]["Properties"]
        assert props["TableName"] == f"{synth.prefix}-{table.logical_id}"
        keys = [{"AttributeName": table.partition_key.name, "KeyType": "HASH"}]
        if table.sort_key:
            keys.append({"AttributeName": table.sort_key.name, "KeyType": "RANGE"})
        assert props["KeySchema"] == keys
        indexes = {i["IndexName"]: i for i in props.get("GlobalSecondaryIndexes", [])}
        assert set(indexes) == {index.name for index in table.indexes}
        if table.ttl_attribute:
            assert props["TimeToLiveSpecification"] == {
                "AttributeName": table.ttl_attribute,
                "Enabled": True,
            }


def test_tables_have_pitr_and_the_customer_key(synth: Synth) -> None:
    for table in TABLES:
        props = synth.templates[DATA]["Resources"][table.logical_id]["Properties"]
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        assert props["SSESpecification"]["SSEEnabled"] is True
        assert props["SSESpecification"]["SSEType"] == "KMS"
        assert "Fn::GetAtt" in props["SSESpecification"]["KMSMasterKeyId"]
        assert props["BillingMode"] == "PAY_PER_REQUEST"


def test_prod_protects_data_and_dev_can_be_destroyed(dev: Synth, prod: Synth) -> None:
    for table in TABLES:
        prod_table = prod.templates[DATA]["Resources"][table.logical_id]
        dev_table = dev.templates[DATA]["Resources"][table.logical_id]
        assert prod_table["Properties"]["DeletionProtectionEnabled"] is True
        assert prod_table["DeletionPolicy"] == "Retain"
        assert dev_table["Properties"]["DeletionProtectionEnabled"] is False
        assert dev_table["DeletionPolicy"] == "Delete"
    for bucket in BUCKETS:
        assert prod.templates[DATA]["Resources"][bucket.logical_id]["DeletionPolicy"] == "Retain"


def test_project_bus_is_named_for_the_stage(synth: Synth) -> None:
    synth.template(DATA).has_resource_properties(
        "AWS::Events::EventBus", {"Name": f"{synth.prefix}-bus"}
    )
    # Its policy only denies (tests/infra/test_infra_access.py): no other account may put
    # events, and in this account IAM policies decide within what the bus denies.
    synth.template(DATA).resource_count_is("AWS::Events::EventBusPolicy", 0)
    [bus] = synth.resources("AWS::Events::EventBus", DATA).values()
    assert {s["Effect"] for s in bus["Properties"]["Policy"]["Statement"]} == {"Deny"}
