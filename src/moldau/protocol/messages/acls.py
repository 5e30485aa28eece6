"""ACL administration: DescribeAcls (29), CreateAcls (30), DeleteAcls (31).

Kafka 4.x states validVersions 1-3 for all three (version 0 was removed in 4.0; older
specs had 0-3); field versions are written as the specs state them.
"""

from moldau.protocol.schema import Api

DESCRIBE_ACLS = Api(
    key=29,
    name="DescribeAcls",
    versions="1-3",  # older specs: 0-3
    flexible="2+",
    request="""
        resource_type_filter: int8
        resource_name_filter: string?
        pattern_type_filter: int8 1+ default=3
        principal_filter: string?
        host_filter: string?
        operation: int8
        permission_type: int8
    """,
    response="""
        throttle_time_ms: int32
        error_code: int16
        error_message: string?
        resources: []DescribeAclsResource
            resource_type: int8
            resource_name: string
            pattern_type: int8 1+ default=3
            acls: []AclDescription
                principal: string
                host: string
                operation: int8
                permission_type: int8
    """,
)

CREATE_ACLS = Api(
    key=30,
    name="CreateAcls",
    versions="1-3",  # older specs: 0-3
    flexible="2+",
    request="""
        creations: []AclCreation
            resource_type: int8
            resource_name: string
            resource_pattern_type: int8 1+ default=3
            principal: string
            host: string
            operation: int8
            permission_type: int8
    """,
    response="""
        throttle_time_ms: int32
        results: []AclCreationResult
            error_code: int16
            error_message: string?
    """,
)

DELETE_ACLS = Api(
    key=31,
    name="DeleteAcls",
    versions="1-3",  # older specs: 0-3
    flexible="2+",
    request="""
        filters: []DeleteAclsFilter
            resource_type_filter: int8
            resource_name_filter: string?
            pattern_type_filter: int8 1+ default=3
            principal_filter: string?
            host_filter: string?
            operation: int8
            permission_type: int8
    """,
    response="""
        throttle_time_ms: int32
        filter_results: []DeleteAclsFilterResult
            error_code: int16
            error_message: string?
            matching_acls: []DeleteAclsMatchingAcl
                error_code: int16
                error_message: string?
                resource_type: int8
                resource_name: string
                pattern_type: int8 1+ default=3
                principal: string
                host: string
                operation: int8
                permission_type: int8
    """,
)
