# frozen_string_literal: true

# Logs every render that fell back to the browser. hypernova 2.0.0 calls
# on_error with three arguments, (error, job, jobs_hash):
# - one job failed in the tier (unknown component, a throw, a timeout):
#   error is a Hash (name, message, stack) and job that job's Hash;
# - the whole request failed (tier down, timeout, non-JSON answer): error is
#   the exception, job nil, and jobs_hash the page's jobs by name.
# A two-argument on_error (as in the gem's README) raises ArgumentError
# there, and the page fails.
class HypernovaErrorLog
  def on_error(error, job = nil, jobs_hash = nil)
    message = error.is_a?(Exception) ? "#{error.class}: #{error.message}" : "#{error['name']}: #{error['message']}"
    components = job ? [job[:name]] : (jobs_hash || {}).keys
    Rails.logger.warn("hypernova fallback: #{message} (components: #{components.join(', ')})")
  end
end

Hypernova.add_plugin!(HypernovaErrorLog.new)
