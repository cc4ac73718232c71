# frozen_string_literal: true

# For rackup or puma by hand; the tests start the app with serve.rb.
require_relative "config/environment"

run Rails.application
