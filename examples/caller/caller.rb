#!/usr/bin/env ruby
# frozen_string_literal: true
#
# A monolith-style caller of ssrd, in the shape of a Rails app using the
# Hypernova Ruby client, with nothing but Ruby's standard library.
#
# For each page it batches the page's components into one POST /batch over
# loopback with short timeouts (100 ms to connect, 600 ms to read: the
# Hypernova Ruby client's defaults, `open_timeout` 0.1 s and `timeout` 0.6 s). Every job that comes back rendered is
# embedded as server HTML; every job that failed, and every job of a batch
# that timed out or errored, is embedded as fallback markup (props only)
# for the browser to render. The page loads js-bundle/dist/client.js, which
# hydrates the first kind and renders the second. page_server.rb, beside
# this file, serves the page and the client bundle.
#
#   SSRD_URL=http://127.0.0.1:9000/batch PORT=8080 ruby examples/caller/caller.rb
#   open http://127.0.0.1:8080/?name=Loft
#
# Query parameters: name (HelloWorld's name prop), with (extra components,
# comma-separated, e.g. Runaway), nav=0 (no NavBar).

require "json"
require "net/http"
require "securerandom"
require "uri"
require_relative "page_server"

SSRD_URL = URI(ENV.fetch("SSRD_URL", "http://127.0.0.1:9000/batch"))
# This caller writes the placement markup itself (below), so it asks for the
# bare HTML even of a bundle that has ssrd wrap it (README, "The bundle
# contract": markup).
SSRD_URL.query = [SSRD_URL.query, "markup=0"].compact.join("&") unless SSRD_URL.query.to_s.include?("markup=")
OPEN_TIMEOUT_S = Float(ENV.fetch("SSRD_OPEN_TIMEOUT_MS", "100")) / 1000
TIMEOUT_S = Float(ENV.fetch("SSRD_TIMEOUT_MS", "600")) / 1000
PORT = Integer(ENV.fetch("PORT", "8080"))
CLIENT_JS = ENV.fetch("CLIENT_JS", File.expand_path("../../js-bundle/dist/client.js", __dir__))

# Hypernova's placement markup, as protocol.md and ssrd's README describe it.
module Markup
  module_function

  def key(name)
    name.gsub(/\W/, "")
  end

  # JSON inside the script element: `&` and `>` as entities (what
  # Hypernova's browser runtime reverses), and `<`, U+2028, U+2029 as JSON
  # escapes so that no props value can end the script element early.
  def encode(data)
    json = JSON.generate(data)
    escaped = json.gsub("&", "&amp;").gsub(">", "&gt;").gsub("<", "\\u003c")
    escaped = escaped.gsub("\u2028", "\\u2028").gsub("\u2029", "\\u2029")
    "<!--#{escaped}-->"
  end

  def placement(name, html, data)
    k = key(name)
    id = SecureRandom.uuid
    %(<div data-hypernova-key="#{k}" data-hypernova-id="#{id}">#{html}</div>\n) +
      %(<script type="application/json" data-hypernova-key="#{k}" data-hypernova-id="#{id}">#{encode(data)}</script>)
  end
end

# Renders a batch; returns [results or nil, why it failed or nil].
def render_batch(jobs)
  http = Net::HTTP.new(SSRD_URL.host, SSRD_URL.port)
  http.open_timeout = OPEN_TIMEOUT_S
  http.read_timeout = TIMEOUT_S
  http.write_timeout = TIMEOUT_S
  request = Net::HTTP::Post.new(SSRD_URL.request_uri, "Content-Type" => "application/json")
  request.body = JSON.generate(jobs)
  response = http.request(request)
  # A failed request names its kind in X-Ssrd-Error and says what was wrong
  # in one line of text (docs/protocol.md).
  unless response.code == "200"
    return [nil, "HTTP #{response.code} #{response['X-Ssrd-Error']}: #{response.body.to_s.lines.first.to_s.strip}"]
  end

  [JSON.parse(response.body).fetch("results"), nil]
rescue StandardError => e
  [nil, "#{e.class}: #{e.message}"]
end

def page(params)
  components = []
  components << ["NavBar", { "user" => { "name" => "Grace", "avatarUrl" => "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7", "unread" => 2 },
                             "links" => [{ "href" => "/trips", "label" => "Trips" }] }] unless params["nav"] == "0"
  components << ["HelloWorld", { "name" => params.fetch("name", "caller") }]
  params.fetch("with", "").split(",").reject(&:empty?).each { |name| components << [name, {}] }

  jobs = components.each_with_index.to_h { |(name, data), i| [i.to_s, { "name" => name, "data" => data }] }
  started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  results, failure = render_batch(jobs)
  elapsed_ms = ((Process.clock_gettime(Process::CLOCK_MONOTONIC) - started) * 1000).round
  warn JSON.generate({ msg: "batch", jobs: jobs.size, ms: elapsed_ms, failure: failure })

  rendered = 0
  body = components.each_with_index.map do |(name, data), i|
    result = results && results[i.to_s]
    if result && result["success"]
      rendered += 1
      Markup.placement(name, result["html"], data)
    else
      Markup.placement(name, "", data) # fallback: the browser renders it
    end
  end

  <<~HTML
    <!DOCTYPE html>
    <html>
    <head><meta charset="utf-8"><title>ssrd caller</title></head>
    <body data-ssr-rendered="#{rendered}" data-ssr-failure="#{failure ? 'yes' : 'no'}" data-ssr-ms="#{elapsed_ms}">
    #{body.join("\n")}
    <script src="/client.js"></script>
    </body>
    </html>
  HTML
end

server = PageServer.new(port: PORT, client_js: CLIENT_JS) { |params| page(params) }
warn JSON.generate({ msg: "caller listening", port: server.port, ssrd: SSRD_URL.to_s, timeout_ms: (TIMEOUT_S * 1000).round })
server.run
