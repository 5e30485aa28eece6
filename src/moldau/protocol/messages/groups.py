"""Classic consumer-group APIs: FindCoordinator (10), JoinGroup (11), Heartbeat (12),
LeaveGroup (13), SyncGroup (14), DescribeGroups (15), ListGroups (16), DeleteGroups (42)."""

from moldau.protocol.schema import Api

FIND_COORDINATOR = Api(
    key=10,
    name="FindCoordinator",
    versions="0-6",
    flexible="3+",
    request="""
        key: string 0-3
        key_type: int8 1+ default=0
        coordinator_keys: []string 4+
    """,
    response="""
        throttle_time_ms: int32 1+
        error_code: int16 0-3
        error_message: string? 1-3
        node_id: int32 0-3
        host: string 0-3
        port: int32 0-3
        coordinators: []Coordinator 4+
            key: string 4+
            node_id: int32 4+
            host: string 4+
            port: int32 4+
            error_code: int16 4+
            error_message: string? 4+
    """,
)

JOIN_GROUP = Api(
    key=11,
    name="JoinGroup",
    versions="0-9",
    flexible="6+",
    request="""
        group_id: string
        session_timeout_ms: int32
        rebalance_timeout_ms: int32 1+ default=-1
        member_id: string
        group_instance_id: string? 5+ default=null
        protocol_type: string
        protocols: []JoinGroupRequestProtocol
            name: string
            metadata: bytes
        reason: string? 8+ default=null
    """,
    response="""
        throttle_time_ms: int32 2+
        error_code: int16
        generation_id: int32 default=-1
        protocol_type: string? 7+ default=null
        protocol_name: string null=7+
        leader: string
        skip_assignment: bool 9+ default=false
        member_id: string
        members: []JoinGroupResponseMember
            member_id: string
            group_instance_id: string? 5+ default=null
            metadata: bytes
    """,
)

HEARTBEAT = Api(
    key=12,
    name="Heartbeat",
    versions="0-4",
    flexible="4+",
    request="""
        group_id: string
        generation_id: int32
        member_id: string
        group_instance_id: string? 3+ default=null
    """,
    response="""
        throttle_time_ms: int32 1+
        error_code: int16
    """,
)

LEAVE_GROUP = Api(
    key=13,
    name="LeaveGroup",
    versions="0-5",
    flexible="4+",
    request="""
        group_id: string
        member_id: string 0-2
        members: []MemberIdentity 3+
            member_id: string 3+
            group_instance_id: string? 3+ default=null
            reason: string? 5+ default=null
    """,
    response="""
        throttle_time_ms: int32 1+
        error_code: int16
        members: []MemberResponse 3+
            member_id: string 3+
            group_instance_id: string? 3+
            error_code: int16 3+
    """,
)

SYNC_GROUP = Api(
    key=14,
    name="SyncGroup",
    versions="0-5",
    flexible="4+",
    request="""
        group_id: string
        generation_id: int32
        member_id: string
        group_instance_id: string? 3+ default=null
        protocol_type: string? 5+ default=null
        protocol_name: string? 5+ default=null
        assignments: []SyncGroupRequestAssignment
            member_id: string
            assignment: bytes
    """,
    response="""
        throttle_time_ms: int32 1+
        error_code: int16
        protocol_type: string? 5+ default=null
        protocol_name: string? 5+ default=null
        assignment: bytes
    """,
)

DESCRIBE_GROUPS = Api(
    key=15,
    name="DescribeGroups",
    versions="0-6",
    flexible="5+",
    request="""
        groups: []string
        include_authorized_operations: bool 3+
    """,
    response="""
        throttle_time_ms: int32 1+
        groups: []DescribedGroup
            error_code: int16
            error_message: string? 6+ default=null
            group_id: string
            group_state: string
            protocol_type: string
            protocol_data: string
            members: []DescribedGroupMember
                member_id: string
                group_instance_id: string? 4+ default=null
                client_id: string
                client_host: string
                member_metadata: bytes
                member_assignment: bytes
            authorized_operations: int32 3+ default=-2147483648
    """,
)

LIST_GROUPS = Api(
    key=16,
    name="ListGroups",
    versions="0-5",
    flexible="3+",
    request="""
        states_filter: []string 4+
        types_filter: []string 5+
    """,
    response="""
        throttle_time_ms: int32 1+
        error_code: int16
        groups: []ListedGroup
            group_id: string
            protocol_type: string
            group_state: string 4+
            group_type: string 5+
    """,
)

DELETE_GROUPS = Api(
    key=42,
    name="DeleteGroups",
    versions="0-2",
    flexible="2+",
    request="""
        groups_names: []string
    """,
    response="""
        throttle_time_ms: int32
        results: []DeletableGroupResult
            group_id: string
            error_code: int16
    """,
)
