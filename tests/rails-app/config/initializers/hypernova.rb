# frozen_string_literal: true

# The hypernova gem, pointed at the ssrd tier. In an app with a Gemfile,
# `gem "hypernova", "2.0.0"` puts the gem on the load path; this test app
# has no Gemfile and loads the gem's lib/ from HYPERNOVA_RUBY_LIB instead.
$LOAD_PATH.unshift(ENV["HYPERNOVA_RUBY_LIB"]) if ENV["HYPERNOVA_RUBY_LIB"]
require "securerandom" # hypernova 2.0.0's BlankRenderer uses SecureRandom without requiring it
require "hypernova"

Hypernova.configure do |config|
  config.host = ENV.fetch("SSRD_HOST", "127.0.0.1")
  config.port = Integer(ENV.fetch("SSRD_PORT", "9000"))
  # The gem's own defaults, written out: give up on connecting after
  # 100 ms and on the answer after 600 ms, then render in the browser.
  config.open_timeout = 0.1
  config.timeout = 0.6
end
