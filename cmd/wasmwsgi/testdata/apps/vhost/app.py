def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("vhost %s script=%r path=%r" % (environ["HTTP_HOST"], environ["SCRIPT_NAME"], environ["PATH_INFO"])).encode()]
