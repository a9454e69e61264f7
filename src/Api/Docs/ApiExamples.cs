namespace ActorQuery.Api.Docs;

/// <summary>Examples shown in /docs (shapes as the server answers them).</summary>
internal static class ApiExamples
{
    public const string NativeRequest = """
        {"prompt": "The capital of France is", "max_new_tokens": 16, "temperature": 0, "stop": ["\n"], "stream": false}
        """;

    public const string NativeResponse = """
        {"id": "req-3f2a9c1b7d4e5f60", "text": " Paris.", "finish_reason": "stop",
         "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8, "prompt_tokens_details": {"cached_tokens": 0}},
         "cached": false, "latency_ms": 412, "model": "Qwen2.5-0.5B-Instruct", "node": "akka://actorquery/user/model-0"}
        """;

    public const string ChatRequest = """
        {"model": "Qwen2.5-0.5B-Instruct", "messages": [{"role": "system", "content": "You are terse."},
         {"role": "user", "content": "Name a prime number."}], "max_tokens": 16, "temperature": 0.7, "seed": 1}
        """;

    public const string ChatResponse = """
        {"id": "chatcmpl-req-3f2a9c1b7d4e5f60", "object": "chat.completion", "created": 1764250000, "model": "Qwen2.5-0.5B-Instruct",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "7"}, "logprobs": null, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 24, "completion_tokens": 2, "total_tokens": 26,
                   "prompt_tokens_details": {"cached_tokens": 16}}}
        """;

    public const string CompletionRequest = """
        {"model": "Qwen2.5-0.5B-Instruct", "prompt": "Once upon a time", "max_tokens": 16, "temperature": 0}
        """;

    public const string CompletionResponse = """
        {"id": "cmpl-req-3f2a9c1b7d4e5f60", "object": "text_completion", "created": 1764250000, "model": "Qwen2.5-0.5B-Instruct",
         "choices": [{"text": ", there was a little girl", "index": 0, "logprobs": null, "finish_reason": "length"}],
         "usage": {"prompt_tokens": 4, "completion_tokens": 16, "total_tokens": 20, "prompt_tokens_details": {"cached_tokens": 0}}}
        """;

    public const string Models = """
        {"object": "list", "data": [{"id": "Qwen2.5-0.5B-Instruct", "object": "model", "created": 1764250000,
         "owned_by": "actorquery", "max_model_len": 32768}]}
        """;

    public const string Health = """
        {"status": "ok", "ready": true, "node": "akka.tcp://actorquery@localhost:0", "model": "Qwen2.5-0.5B-Instruct",
         "draining": false, "paused": false, "in_flight": 1, "queued": 0, "max_in_flight": 8, "max_queue": 64,
         "workers": [{"worker": "model-0", "node": "akka.tcp://actorquery@localhost:0", "state": "ready", "model": "Qwen2.5-0.5B-Instruct",
           "running": 1, "queued": 0, "kv_free_tokens": 30000, "kv_capacity_tokens": 32768, "restarts": 1, "oom_count": 1,
           "last_oom": "2026-11-27T14:02:11+00:00", "degraded": false, "degraded_reason": null, "error": null}],
         "error": null, "pause_reason": null}
        """;

    public const string Memory = """
        {"node": "akka.tcp://actorquery@localhost:0",
         "summary": "resident 1.43 GiB of the cgroup limit 1.6 GiB: plan 1.44 GiB (runtime 210 MiB, weights 942 MiB, load overhead 24 MiB, activations 38 MiB, KV 264 MiB), headroom 178 MiB; KV 1024 of 22528 tokens in use; watchdog normal",
         "limit": {"bytes": 1717986918, "source": "cgroup limit", "utilization": 0.9, "budget_bytes": 1325987266},
         "plan": {"runtime_overhead_bytes": 220200960, "weights_bytes": 987758592, "load_overhead_bytes": 25165824,
           "activation_peak_bytes": 39845888, "kv_pool_bytes": 276824064, "loading_share_bytes": 0, "planned_bytes": 1549795328},
         "actual": {"resident_bytes": 1530920960, "managed_bytes": 52428800, "device_bytes": null, "unaccounted_bytes": 20971520,
           "headroom_bytes": 187065958},
         "kv": {"capacity_tokens": 22528, "used_tokens": 1024, "free_tokens": 21504, "capacity_bytes": 276824064,
           "used_bytes": 12582912, "free_bytes": 264241152, "bytes_per_token": 12288},
         "watchdog": {"state": "normal", "reason": null, "cleanup_mark": 0.5, "pause_mark": 0.8, "shed_mark": 0.95,
           "cleanup_at_bytes": 1633891123, "pause_at_bytes": 1684348600, "shed_at_bytes": 1709577338, "read_every_ms": 5000,
           "cleanups": 0, "pauses": 0, "sheds": 0, "at": "2026-11-27T14:05:00+00:00"},
         "workers": [{"worker": "worker-1", "node": "akka.tcp://actorquery@localhost:0", "state": "ready", "device": "cpu",
           "memory_pressure": null, "weights_bytes": 987758592, "load_overhead_bytes": 25165824, "activation_peak_bytes": 39845888,
           "kv_pool_bytes": 276824064, "kv_used_bytes": 12582912, "kv_capacity_tokens": 22528, "kv_free_tokens": 21504,
           "kv_block_size": 16, "on_device": false, "oom_count": 0, "last_oom": null, "degraded": false, "degraded_reason": null}],
         "cache": {"entries": 12, "bytes": 48000, "hits": 40, "misses": 75}}
        """;

    public const string NativeStream = """
        event: chunk
        data: {"id":"req-3f2a9c1b7d4e5f60","text":" Paris"}

        event: chunk
        data: {"id":"req-3f2a9c1b7d4e5f60","text":"."}

        event: done
        data: {"id":"req-3f2a9c1b7d4e5f60","text":null,"finish_reason":"stop","usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":0}},"cached":false,"latency_ms":230,"model":"Qwen2.5-0.5B-Instruct","node":"akka://actorquery/user/model-0"}
        """;

    public const string ChatStream = """
        data: {"id":"chatcmpl-req-1","object":"chat.completion.chunk","created":1764250000,"model":"Qwen2.5-0.5B-Instruct","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}

        data: {"id":"chatcmpl-req-1","object":"chat.completion.chunk","created":1764250000,"model":"Qwen2.5-0.5B-Instruct","choices":[{"index":0,"delta":{"role":null,"content":"7"},"logprobs":null,"finish_reason":null}],"usage":null}

        data: {"id":"chatcmpl-req-1","object":"chat.completion.chunk","created":1764250000,"model":"Qwen2.5-0.5B-Instruct","choices":[{"index":0,"delta":{"role":null,"content":null},"logprobs":null,"finish_reason":"stop"}],"usage":null}

        data: {"id":"chatcmpl-req-1","object":"chat.completion.chunk","created":1764250000,"model":"Qwen2.5-0.5B-Instruct","choices":[],"usage":{"prompt_tokens":24,"completion_tokens":1,"total_tokens":25,"prompt_tokens_details":{"cached_tokens":16}}}

        data: [DONE]
        """;

    public const string CompletionStream = """
        data: {"id":"cmpl-req-1","object":"text_completion","created":1764250000,"model":"Qwen2.5-0.5B-Instruct","choices":[{"text":", there","index":0,"logprobs":null,"finish_reason":null}],"usage":null}

        data: {"id":"cmpl-req-1","object":"text_completion","created":1764250000,"model":"Qwen2.5-0.5B-Instruct","choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"length"}],"usage":null}

        data: [DONE]
        """;

    public const string ResponsesRequest = """
        {"model": "default", "input": "What is 37 + 58?", "temperature": 0, "metadata": {"run": "readme"}}
        """;

    public const string ResponsesResponse = """
        {"id":"resp_req-059b2c9ae0544f48","object":"response","created_at":1796679910,"status":"completed","error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"default","output":[{"type":"message","id":"msg_3fbb6bcb18233dc9c7b54877e86c05bc","status":"completed","role":"assistant","content":[{"type":"output_text","text":"95","annotations":[],"logprobs":[]}]}],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"store":false,"temperature":0,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1,"truncation":"disabled","usage":{"input_tokens":16,"input_tokens_details":{"cached_tokens":0},"output_tokens":2,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":18},"user":null,"metadata":{"run":"readme"}}
        """;

    public const string ResponsesStream = """
        event: response.created
        data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_req-b0f43e5f84434955","object":"response","created_at":1796679934,"status":"in_progress","error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"default","output":[],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"store":false,"temperature":0,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1,"truncation":"disabled","usage":null,"user":null,"metadata":{}}}

        event: response.in_progress
        data: {"type":"response.in_progress","sequence_number":1,"response":{"id":"resp_req-b0f43e5f84434955","object":"response","created_at":1796679934,"status":"in_progress","error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"default","output":[],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"store":false,"temperature":0,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1,"truncation":"disabled","usage":null,"user":null,"metadata":{}}}

        event: response.output_item.added
        data: {"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"type":"message","id":"msg_fe9fd35cda6e24ff305d5a76c0c71bf9","status":"in_progress","role":"assistant","content":[]}}

        event: response.content_part.added
        data: {"type":"response.content_part.added","sequence_number":3,"item_id":"msg_fe9fd35cda6e24ff305d5a76c0c71bf9","output_index":0,"content_index":0,"part":{"type":"output_text","text":"","annotations":[],"logprobs":[]}}

        event: response.output_text.delta
        data: {"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_fe9fd35cda6e24ff305d5a76c0c71bf9","output_index":0,"content_index":0,"delta":"121","logprobs":[]}

        event: response.output_text.done
        data: {"type":"response.output_text.done","sequence_number":5,"item_id":"msg_fe9fd35cda6e24ff305d5a76c0c71bf9","output_index":0,"content_index":0,"text":"121","logprobs":[]}

        event: response.content_part.done
        data: {"type":"response.content_part.done","sequence_number":6,"item_id":"msg_fe9fd35cda6e24ff305d5a76c0c71bf9","output_index":0,"content_index":0,"part":{"type":"output_text","text":"121","annotations":[],"logprobs":[]}}

        event: response.output_item.done
        data: {"type":"response.output_item.done","sequence_number":7,"output_index":0,"item":{"type":"message","id":"msg_fe9fd35cda6e24ff305d5a76c0c71bf9","status":"completed","role":"assistant","content":[{"type":"output_text","text":"121","annotations":[],"logprobs":[]}]}}

        event: response.completed
        data: {"type":"response.completed","sequence_number":8,"response":{"id":"resp_req-b0f43e5f84434955","object":"response","created_at":1796679934,"status":"completed","error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"default","output":[{"type":"message","id":"msg_fe9fd35cda6e24ff305d5a76c0c71bf9","status":"completed","role":"assistant","content":[{"type":"output_text","text":"121","annotations":[],"logprobs":[]}]}],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"store":false,"temperature":0,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1,"truncation":"disabled","usage":{"input_tokens":16,"input_tokens_details":{"cached_tokens":0},"output_tokens":2,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":18},"user":null,"metadata":{}}}
        """;

    public const string Cluster = """
        {"enabled": true, "self": "akka.tcp://actorquery@127.0.0.1:9100", "roles": ["gateway", "worker"],
         "leader": "akka.tcp://actorquery@127.0.0.1:9100",
         "members": [
           {"address": "akka.tcp://actorquery@127.0.0.1:9100", "roles": ["gateway", "worker"], "status": "up", "reachable": true, "self": true, "leader": true},
           {"address": "akka.tcp://actorquery@127.0.0.1:9101", "roles": ["gateway", "worker"], "status": "up", "reachable": false, "self": false, "leader": false}],
         "unreachable": ["akka.tcp://actorquery@127.0.0.1:9101"],
         "workers": [
           {"address": "akka.tcp://actorquery@127.0.0.1:9100", "node": "node-0", "worker": "worker-1", "state": "ready", "model": "default",
            "running": 2, "queued": 0, "load": 2, "kv_free_tokens": 30720, "kv_capacity_tokens": 32768, "restarts": 0, "oom_count": 0,
            "degraded": false, "error": null, "last_seen": "2026-11-27T17:40:01.123+00:00"}]}
        """;
}
