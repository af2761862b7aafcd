{
  "variables": { "mailfront_testing%": "true" },
  "target_defaults": {
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "OPENSSL_API_COMPAT=30000"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
    "cflags_cc": ["-std=c++20", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"]
  },
  "targets": [
    {
      "target_name": "mailfront_core",
      "type": "static_library",
      "defines": ["BUILDING_NODE_EXTENSION"],
      "conditions": [
        ["OS!='linux'", { "actions": [{ "action_name": "linux_only", "inputs": [], "outputs": ["linux_only"], "action": ["sh", "-c", "echo 'mailfront needs Linux (epoll)' >&2; exit 1"] }] }]
      ],
      "sources": [
        "native/backend_greeting.cc", "native/cert_check.cc", "native/cert_check_async.cc", "native/cert_check_js.cc", "native/pem_files.cc", "native/client_io.cc", "native/client_net.cc", "native/conn.cc", "native/conn_backend.cc", "native/conn_close.cc", "native/conn_handshake.cc", "native/conn_login.cc", "native/conn_record.cc", "native/conn_relay.cc", "native/crc32c.cc", "native/key_proof.cc", "native/ctx_cache.cc", "native/dialog.cc", "native/event_queue.cc", "native/guard.cc", "native/library_queries.cc", "native/login.cc", "native/login_server.cc", "native/login_text.cc", "native/net.cc", "native/proxy_header.cc", "native/proxy_object.cc", "native/proxy_parse.cc", "native/rules.cc", "native/sd_notify.cc", "native/server_health.cc", "native/snapshot.cc", "native/snapshot_fields.cc", "native/snapshot_reader.cc", "native/sni.cc", "native/thread_priority.cc", "native/tickets.cc", "native/tls.cc", "native/tls13_keys.cc", "native/tls13_record.cc", "native/conn_tls.cc", "native/worker.cc"
      ]
    },
    {
      "target_name": "mailfront",
      "sources": ["native/addon.cc"],
      "dependencies": ["mailfront_core"]
    }
  ],
  "conditions": [
    ["mailfront_testing=='true'", {
      "targets": [
        {
          "target_name": "mailfront_testing",
          "type": "shared_library",
          "sources": ["native/test_exports.cc"],
          "dependencies": ["mailfront_core"]
        }
      ]
    }]
  ]
}
