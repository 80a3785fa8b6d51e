"""gRPC transport of events.v1.EventsAdminService: translate messages, call EventsAdmin, nothing else."""

from __future__ import annotations

import json
from datetime import datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from svckit.events.admin import EventsAdmin
from svckit.events.channels import DeadLetterEntry
from svckit.events.config import Keys
from svckit.gen.events.v1 import events_admin_service_pb2 as pb
from svckit.gen.events.v1 import events_admin_service_pb2_grpc as pb_grpc
from svckit.grpc_server import Registration
from svckit.redisclient import RedisClient

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["EventsAdminService"].full_name


def _ts(iso: str) -> Timestamp | None:
    if not iso:
        return None
    ts = Timestamp()
    ts.FromDatetime(datetime.fromisoformat(iso))
    return ts


def dead_letter_to_pb(entry: DeadLetterEntry) -> pb.DeadLetter:
    ev = entry.event
    return pb.DeadLetter(
        id=entry.id,
        stream=entry.stream,
        group=entry.group,
        event=pb.Event(
            event_id=ev.event_id,
            type=ev.type,
            aggregate_id=ev.aggregate_id,
            payload_json=json.dumps(ev.payload, separators=(",", ":"), sort_keys=True),
            occur_time=_ts(ev.occurred_at),
        ),
        last_error=entry.last_error,
        reason=entry.reason,
        attempts=[pb.Attempt(attempt=a.attempt, fail_time=_ts(a.at), error=a.error) for a in ev.history],
        dead_letter_time=_ts(entry.dead_at),
    )


class EventsAdminServicer(pb_grpc.EventsAdminServiceServicer):
    def __init__(self, admin: EventsAdmin) -> None:
        self._admin = admin

    async def ListStreams(self, request: pb.ListStreamsRequest, context: grpc.aio.ServicerContext):
        overview = await self._admin.overview()
        return pb.ListStreamsResponse(
            streams=[
                pb.Stream(
                    name=s.name,
                    length=s.length,
                    groups=[
                        pb.ConsumerGroup(
                            name=g.name,
                            consumers=g.consumers,
                            pending_count=g.pending,
                            lag=-1 if g.lag is None else g.lag,
                            last_delivered_id=g.last_delivered_id,
                        )
                        for g in s.groups
                    ],
                )
                for s in overview.streams
            ],
            scheduled_retry_count=overview.scheduled_retries,
            dead_letter_count=overview.dead_letters,
        )

    async def ListDeadLetters(self, request: pb.ListDeadLettersRequest, context: grpc.aio.ServicerContext):
        page, token = await self._admin.list_dead_letters(request.page_size, request.page_token)
        return pb.ListDeadLettersResponse(
            dead_letters=[dead_letter_to_pb(e) for e in page], next_page_token=token
        )

    async def GetDeadLetter(self, request: pb.GetDeadLetterRequest, context: grpc.aio.ServicerContext):
        return pb.GetDeadLetterResponse(
            dead_letter=dead_letter_to_pb(await self._admin.get_dead_letter(request.id))
        )

    async def ReplayDeadLetter(self, request: pb.ReplayDeadLetterRequest, context: grpc.aio.ServicerContext):
        return pb.ReplayDeadLetterResponse(stream_entry_id=await self._admin.replay(request.id))

    async def ReplayAllDeadLetters(
        self, request: pb.ReplayAllDeadLettersRequest, context: grpc.aio.ServicerContext
    ):
        count = await self._admin.replay_all(request.stream, request.group)
        return pb.ReplayAllDeadLettersResponse(replayed_count=count)

    async def DiscardDeadLetter(
        self, request: pb.DiscardDeadLetterRequest, context: grpc.aio.ServicerContext
    ):
        entry = await self._admin.discard(request.id, request.reason, request.operator)
        return pb.DiscardDeadLetterResponse(event_id=entry.event.event_id)


def admin_registration(redis: RedisClient, keys: Keys) -> Registration:
    """The admin service, ready to add to any service's ``ServiceParts.registrations``."""
    servicer = EventsAdminServicer(EventsAdmin(redis, keys))
    return Registration(pb_grpc.add_EventsAdminServiceServicer_to_server, servicer, SERVICE_NAME)
