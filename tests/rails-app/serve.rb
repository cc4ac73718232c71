# frozen_string_literal: true
#
# Runs the app on Puma, in this process, for the tests
# (tests/browser/rails.test.mjs):
#
#   SSRD_PORT=9000 PORT=0 HYPERNOVA_RUBY_LIB=/path/to/hypernova/lib ruby serve.rb
#
# PORT: where the app listens (0: any free port); SSRD_PORT: the ssrd tier
# (nginx's port); CLIENT_JS: the client bundle served at /client.js
# (default js-bundle/dist/client.js). Prints one JSON line,
# {"ready":true,"port":N}, on stdout once it listens; logs go to stderr.
# SIGTERM or SIGINT stops it after the requests in progress.

ENV["RAILS_ENV"] ||= "production"
ENV["RACK_ENV"] ||= ENV["RAILS_ENV"]

require "json"
require_relative "config/environment"
require "puma"
require "puma/events"
require "puma/server"

server = Puma::Server.new(Rails.application, Puma::Events.new($stderr, $stderr),
                          min_threads: 0, max_threads: Integer(ENV.fetch("RAILS_MAX_THREADS", "5")),
                          environment: ENV["RAILS_ENV"])
server.add_tcp_listener("127.0.0.1", Integer(ENV.fetch("PORT", "0")))
thread = server.run
%w[TERM INT].each { |signal| trap(signal) { server.stop } }

$stdout.puts JSON.generate({ ready: true, port: server.connected_ports.first })
$stdout.flush
thread.join
