# frozen_string_literal: true
#
# Renders one "page" through the unchanged hypernova-ruby gem, the way a
# Rails controller does, and prints what the page ended up with, for
# tests/hypernova_gem.rs.
#
#   HYPERNOVA_RUBY_LIB=/path/to/hypernova-2.0.0/lib \
#     ruby tests/gem/page.rb < spec.json
#
# spec.json: {"port": 9000, "components": [{"name": "...", "data": {...}}],
#             "raw_data": [index, ...]}   (optional: these components' data
#             is an object whose to_json writes broken JSON, the way a model
#             with a faulty as_json would)
#             "traceparent": "00-…"       (optional: sent with the request)
# Prints:    {"sections": [html per component], "errors": [on_error calls],
#             "ms": elapsed}
#
# The gem runs with its own defaults (open_timeout 0.1 s, timeout 0.6 s):
# only host and port are configured, as in a Rails initializer.

require "json"
require "securerandom" # the gem's BlankRenderer uses it without requiring it

$LOAD_PATH.unshift(ENV.fetch("HYPERNOVA_RUBY_LIB"))
$stderr.reopen(File::NULL) # the gem prints a deprecation warning on load
require "hypernova"
require "hypernova/controller_helpers"

spec = JSON.parse($stdin.read)

Hypernova.configure do |config|
  config.host = "127.0.0.1"
  config.port = spec.fetch("port")
end

# The header OpenTelemetry's Faraday instrumentation adds to every request
# the gem makes (the instrumentation gem itself is not packaged here):
# Faraday's defaults for new connections carry it, as the gem builds a
# fresh connection per render.
if (traceparent = spec["traceparent"])
  require "faraday"
  Faraday.default_connection_options.headers = { "traceparent" => traceparent }
end

# An on_error plugin, as apps use to report failures.
class Recorder
  attr_reader :errors

  def initialize
    @errors = []
  end

  def on_error(error, job = nil, _jobs_hash = nil)
    text = if error.is_a?(Exception)
             "#{error.class}: #{error.message}"
           else
             "#{error['name']}: #{error['message']}"
           end
    @errors << { "error" => text, "job" => job && job[:name] }
  end
end

# Props whose JSON is broken: the gem sends it as it is.
class BrokenJson
  def to_json(*)
    "{broken"
  end
end

# The smallest controller the gem's helpers work in.
class Page
  include Hypernova::ControllerHelpers

  Response = Struct.new(:body)
  attr_reader :response

  def initialize
    @response = Response.new("")
  end

  def render(components)
    hypernova_render_support do
      tokens = components.map { |c| render_react_component(c["name"], c["data"]) }
      @response.body = tokens.each_with_index.map { |t, i| "<section id=\"c#{i}\">#{t}</section>" }.join("\n")
    end
    @response.body.scan(%r{<section id="c\d+">(.*?)</section>}m).map(&:first)
  end
end

recorder = Recorder.new
Hypernova.add_plugin!(recorder)
components = spec.fetch("components")
spec.fetch("raw_data", []).each { |i| components[i]["data"] = { "model" => BrokenJson.new } }
started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
sections = Page.new.render(components)
ms = ((Process.clock_gettime(Process::CLOCK_MONOTONIC) - started) * 1000).round
$stdout.puts JSON.generate({ "sections" => sections, "errors" => recorder.errors, "ms" => ms })
