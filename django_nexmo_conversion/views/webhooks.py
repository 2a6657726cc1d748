from django.http import HttpRequest, HttpResponse


def inbound(request: HttpRequest) -> HttpResponse:
    return HttpResponse(status=501)


def receipt(request: HttpRequest) -> HttpResponse:
    return HttpResponse(status=501)
